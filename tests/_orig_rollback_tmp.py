from airlock.rollback import Conflict, _split, content_digest
from airlock.storage.base import Kind, Storage
from airlock.validate import Change


def find_conflicts(storage: Storage, changes: list[Change]) -> list[Conflict]:
    conflicts: list[Conflict] = []
    produced: dict[str, Change] = {}
    for change in changes:
        if change.action == "delete":
            produced.pop(change.path, None)
        else:
            produced[change.path] = change
        if change.action == "move" and change.source is not None:
            produced.pop(change.source, None)
    for text, change in produced.items():
        path = _split(text)
        entry = storage.stat(path)
        if entry is None:
            conflicts.append(Conflict(text, "was removed since the apply"))
            continue
        if change.action == "mkdir":
            if entry.kind is not Kind.DIR:
                conflicts.append(Conflict(text, f"is now a {entry.kind}, not the folder made"))
            continue
        if change.kind == "symlink":
            if entry.kind is not Kind.SYMLINK:
                conflicts.append(Conflict(text, "was replaced since the apply"))
            continue
        if content_digest(storage, path) != change.sha256_after:
            conflicts.append(Conflict(text, "was modified since the apply"))
    for folder in (c.path for c in changes if c.action == "mkdir" and c.path in produced):
        path = _split(folder)
        found = storage.stat(path)
        if found is None or found.kind is not Kind.DIR:
            continue
        for name in sorted(storage.listdir(path)):
            child = f"{folder}/{name}"
            if child not in produced:
                conflicts.append(Conflict(child, "was added since the apply"))
    restored: set[str] = set()
    for change in changes:
        if change.action == "delete" or change.replaces:
            restored.add(change.path)
        if change.action == "move" and change.source is not None:
            restored.add(change.source)
    for text in sorted(restored - set(produced)):
        if storage.stat(_split(text)) is not None:
            conflicts.append(Conflict(text, "something new stands where the rollback restores"))
    return conflicts
