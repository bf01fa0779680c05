"""What anchors the audit chain outside the database: the signing key and the signed head record.

* **The key** (``AIRLOCK_AUDIT_KEY_FILE``, by default ``<workspace>/.airlock/audit.key``): 32
  random bytes, created when a workspace without one is opened (mode 0600, exclusively: an
  existing key is never overwritten). Every event is signed with it (:func:`airlock.audit.sign`),
  so someone who can write the database but cannot read the key cannot forge or rewrite events.
* **The head record** (``<workspace>/.airlock/audit.head``): the newest event's number and hash,
  signed with the key, replaced atomically after each commit that appended events. A chain cut
  short, or emptied, no longer reaches it. It is written *after* the commit, so a crash in between
  leaves it behind the chain, which verifies; it is never ahead of a chain nobody cut.

The head record only moves forward from an event the chain still holds: one that is missing,
damaged, or names an event the chain no longer has is left as it is, as evidence for
``airlock audit verify``; ``airlock audit anchor`` re-anchors on purpose (after restoring a
backup of the database alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from airlock.audit import GENESIS, ChainReport, Head, verify
from airlock.content import fsync_dir
from airlock.db import AuditRow
from airlock.errors import InputError, IntegrityError, storage_error

KEY_ENV = "AIRLOCK_AUDIT_KEY_FILE"
KEY_BYTES = 32
HEAD_FILE = "audit.head"

log = logging.getLogger("airlock.audit")


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist), write ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key(path: Path) -> bytes:
    """The audit key in ``path``; made first (32 random bytes, mode 0600) if there is none.

    The new key is written to a temporary file and hard-linked into place, so a crash never leaves
    a short key and two processes creating it at once agree on one; on a filesystem without hard
    links (gcsfuse) it is created in place with ``O_EXCL``.
    """
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
        try:
            _write_new(tmp, secrets.token_bytes(KEY_BYTES))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: theirs is the key
            except OSError:
                with contextlib.suppress(FileExistsError):
                    _write_new(path, tmp.read_bytes())
            fsync_dir(path.parent)
        except OSError as exc:
            raise storage_error(exc, "create the audit key", str(path)) from exc
        finally:
            tmp.unlink(missing_ok=True)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise storage_error(exc, "read the audit key", str(path)) from exc
    if len(key) < KEY_BYTES:
        raise IntegrityError(
            f"the audit key {str(path)!r} is too short ({len(key)} bytes; at least {KEY_BYTES})",
            hint="restore it from a backup; if no event was ever signed with it, delete it and "
            "Airlock makes a new one",
        )
    return key


def _head_signature(key: bytes, seq: int, event_hash: str) -> str:
    return hmac.new(
        key, f"airlock audit head {seq} {event_hash}".encode(), hashlib.sha256
    ).hexdigest()


def _any_signed(session: Session) -> bool:
    query = select(AuditRow.seq).where(AuditRow.signature.is_not(None)).limit(1)
    return session.scalars(query).first() is not None


class Anchor:
    """One workspace's audit key and head record."""

    def __init__(self, key_file: Path, head_file: Path, key: bytes) -> None:
        self.key_file = key_file
        self.head_file = head_file
        self.key = key

    @classmethod
    def open(
        cls, state_dir: Path, session: Session, environ: Mapping[str, str] = os.environ
    ) -> Anchor:
        """The workspace's key and head record, each made first if there is none and no event
        is signed yet (a new workspace, or one from before signing). A key missing while signed
        events exist is refused: they were signed with a key kept elsewhere, and a new one would
        sign the next events with another."""
        configured = environ.get(KEY_ENV)
        key_file = Path(configured).absolute() if configured else state_dir / "audit.key"
        if not key_file.exists() and _any_signed(session):
            raise IntegrityError(
                f"the audit key {str(key_file)!r} is missing, but events of the audit log are "
                "signed: with a key kept somewhere else",
                hint=f"set {KEY_ENV} to the key file the service uses, or restore the key from "
                "a backup; if it is lost for good, put 32 random bytes there (verify will then "
                "report every earlier signature)",
            )
        anchor = cls(key_file, state_dir / HEAD_FILE, load_key(key_file))
        anchor.start(session)
        return anchor

    # --- the head record --------------------------------------------------------------------

    def read_head(self) -> Head | None:
        """The head record (None if there is none); IntegrityError if it is damaged or forged."""
        try:
            text = self.head_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(exc, "read the audit head record", str(self.head_file)) from exc
        try:
            data = json.loads(text)
            seq, event_hash, signature = data["seq"], data["hash"], data["signature"]
            if not (type(seq) is int and seq >= 0 and isinstance(event_hash, str)):
                raise TypeError
            if not isinstance(signature, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(
                f"the audit head record {str(self.head_file)!r} is damaged",
                hint="restore it from a backup of .airlock/; `airlock audit anchor` writes a new "
                "one for the chain as it is now",
            ) from None
        if not hmac.compare_digest(signature, _head_signature(self.key, seq, event_hash)):
            raise IntegrityError(
                f"the audit head record {str(self.head_file)!r} is not signed with the audit key: "
                "it was forged or rewritten by someone without the key",
            )
        return Head(seq, event_hash)

    def _write_head(self, head: Head) -> None:
        """Replace the head record atomically: a new file, fsync, rename, fsync the folder."""
        record = {
            "seq": head.seq,
            "hash": head.hash,
            "signature": _head_signature(self.key, head.seq, head.hash),
        }
        folder = self.head_file.parent
        tmp = folder / f".{HEAD_FILE}.{secrets.token_hex(4)}.new"
        try:
            _write_new(tmp, (json.dumps(record) + "\n").encode())
            tmp.replace(self.head_file)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(folder)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise head updates across threads and processes (``flock`` on a file beside it)."""
        fd = os.open(
            self.head_file.with_name(HEAD_FILE + ".lock"),
            os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
            0o600,
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _newest(session: Session) -> Head:
        row = session.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
        return Head(row.seq, row.hash) if row is not None else Head(0, GENESIS)

    def start(self, session: Session) -> None:
        """On opening: write the first head record if there is none and no event is signed yet
        (a new workspace, or one from before signing). A missing head record with signed events
        is left missing: verify reports it. Never raises: a head it cannot write stays missing."""
        if self.head_file.exists():
            return
        try:
            with self._lock():
                if not self.head_file.exists() and not _any_signed(session):
                    self._write_head(self._newest(session))
        except OSError as exc:
            log.warning("could not write the audit head record %s: %s", self.head_file, exc)

    def advance(self, session: Session) -> None:
        """After a commit that appended events: anchor the chain's newest event.

        Only forward from a head record the chain still reaches (its event, with its hash); one
        that is missing, damaged or contradicted is left as evidence. Never raises: a head it
        cannot write stays behind, which verify accepts.
        """
        try:
            with self._lock():
                try:
                    old = self.read_head()
                except IntegrityError:
                    return
                if old is None:
                    return
                newest = self._newest(session)
                if newest.seq <= old.seq:
                    return
                if old.seq > 0:
                    anchored = session.get(AuditRow, old.seq)
                    if anchored is None or anchored.hash != old.hash:
                        return
                elif old.hash != GENESIS:
                    return
                self._write_head(newest)
        except OSError as exc:
            log.warning("could not update the audit head record %s: %s", self.head_file, exc)

    def reanchor(self, session: Session) -> tuple[Head | IntegrityError | None, Head]:
        """Anchor the chain as it is now, whatever the head record said (returned first)."""
        old: Head | IntegrityError | None
        try:
            with self._lock():
                try:
                    old = self.read_head()
                except IntegrityError as exc:
                    old = exc
                new = self._newest(session)
                self._write_head(new)
        except OSError as exc:
            raise storage_error(exc, "write the audit head record", str(self.head_file)) from exc
        return old, new

    # --- verification ------------------------------------------------------------------------

    def verify(self, session: Session, expect_head: str | None = None) -> ChainReport:
        """:func:`airlock.audit.verify` with this key and head record (read before the chain, so
        a commit in between leaves the head behind, never ahead)."""
        if expect_head is not None:
            expect_head = expect_head.strip().lower()
            if not re.fullmatch("[0-9a-f]{64}", expect_head):
                raise InputError(
                    "the expected head must be a hash: 64 hexadecimal characters",
                    hint="copy it from an earlier `airlock audit verify` (its head)",
                )
        problem: str | None = None
        try:
            head = self.read_head()
        except IntegrityError as exc:
            head, problem = None, exc.message
        report = verify(session, self.key, head=head, expect_head=expect_head)
        if problem is not None:
            report.problems.append(problem)
        elif head is None and report.signatures.signed:
            report.problems.append(
                f"the audit head record {str(self.head_file)!r} is missing: without it a chain "
                "cut short cannot be told from a whole one (restore it from a backup of "
                ".airlock/, or re-anchor with `airlock audit anchor`)"
            )
        if report.anchor is not None:
            report.anchor["file"] = str(self.head_file)
        return report
