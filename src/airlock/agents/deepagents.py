"""Airlock as a deepagents backend: replace ``FilesystemBackend`` in one line.

    from airlock.agents.deepagents import AirlockBackend, airlock_tools

    backend = AirlockBackend.open("/srv/ws", scope="projects/Smith", token="alk_...")
    agent = create_deep_agent(model=..., backend=backend, tools=airlock_tools(backend))

:class:`AirlockBackend` implements deepagents' ``SandboxBackendProtocol`` (tested with deepagents
0.7.x) as a thin adapter over an agent session (:class:`airlock.agents.session.AgentSession` in
process, or :class:`airlock.agents.remote.RemoteSession` against ``airlock serve``: see
:meth:`AirlockBackend.remote`): one scope, one principal. Reads see the real workspace (the scope and the policy's read areas) plus the pending
changes; ``write``, ``edit``, ``delete`` and uploads go into the scope's pending plan, never the
real files; ``execute`` runs the command in Airlock's sandbox over the scope plus the pending
changes and folds what it changed into the same plan. Nothing real changes until the plan is
submitted, approved and applied (:func:`airlock_tools` gives the model those steps).

Paths are the sandbox's: ``/workspace/<scope>/...``, ``/workspace/Tools/...``. Every method
answers; none raises for an Airlock refusal (the protocol's error fields carry the message and
what to do next).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from deepagents.backends.protocol import (
    FILE_NOT_FOUND,
    INVALID_PATH,
    IS_DIRECTORY,
    PERMISSION_DENIED,
    DeleteResult,
    EditResult,
    ExecuteResponse,
    FileData,
    FileDownloadResponse,
    FileInfo,
    FileUploadResponse,
    GlobResult,
    GrepMatch,
    GrepResult,
    LsResult,
    ReadResult,
    SandboxBackendProtocol,
    WriteResult,
)
from deepagents.backends.sandbox import MAX_BINARY_BYTES, MAX_OUTPUT_BYTES, TRUNCATION_MSG
from deepagents.backends.utils import (
    EMPTY_CONTENT_WARNING,
    EMPTY_OLD_STRING_ERROR,
    InvalidGlobPatternError,
    _get_backend_read_file_type,
    _relative_to_root,
    compile_grep_include_glob,
    normalize_read_bounds,
    perform_string_replacement,
)
from langchain_core.tools import BaseTool

from airlock.agents.session import Item, Session, open_session
from airlock.errors import (
    AirlockError,
    InputError,
    NotFoundError,
    NotPermittedError,
    UnsafePathError,
)
from airlock.sandbox.base import WORKSPACE_MOUNT

if TYPE_CHECKING:
    from airlock.agents.langchain import AskApproval

__all__ = ["AirlockBackend", "airlock_tools"]

WORKSPACE = WORKSPACE_MOUNT
"""Where the workspace is, for the agent: ``/`` holds only this folder."""


def _say(exc: AirlockError) -> str:
    """An Airlock refusal as one line for a model: what went wrong, then what to do."""
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


def _trim(path: str) -> str:
    """``path`` without trailing slashes (``/`` stays ``/``)."""
    return path.rstrip("/") or "/"


class AirlockBackend(SandboxBackendProtocol):
    """deepagents' ``SandboxBackendProtocol`` over one agent session (a
    :class:`~airlock.agents.session.Session`): an in-process
    :class:`~airlock.agents.session.AgentSession`, or a
    :class:`~airlock.agents.remote.RemoteSession` on ``airlock serve``.

    Build it from a session, or in one line with :meth:`open` (a workspace folder, a scope and
    an Airlock token: the principal comes from Airlock authentication) or :meth:`remote` (the
    service's address instead of the folder).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._close: Callable[[], None] | None = None
        """What :meth:`close` releases: set when this backend made the session."""

    @classmethod
    def open(
        cls,
        workspace: str | Path,
        *,
        scope: str,
        token: str,
        database_url: str | None = None,
    ) -> AirlockBackend:
        """A backend over ``scope`` of the workspace at ``workspace``, in this process, acting
        as the holder of ``token`` (an Airlock API token). Raises :class:`AirlockError` if
        either is refused. :meth:`close` (or ``with``) closes the workspace it opens."""
        session = open_session(workspace, scope=scope, token=token, database_url=database_url)
        backend = cls(session)
        backend._close = session.ws.close
        return backend

    @classmethod
    def remote(cls, url: str, *, scope: str, token: str) -> AirlockBackend:
        """A backend over ``scope`` on the Airlock service at ``url`` (``airlock serve``, e.g.
        ``http://127.0.0.1:8080``), acting as the holder of ``token``. :meth:`close` (or
        ``with``) closes its connection."""
        from airlock.agents.remote import RemoteSession

        session = RemoteSession(url, scope=scope, token=token)
        backend = cls(session)
        backend._close = session.close
        return backend

    def close(self) -> None:
        """Release what :meth:`open` or :meth:`remote` made (a given session is the caller's)."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def __enter__(self) -> AirlockBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def id(self) -> str:
        return self.session.id

    @property
    def root(self) -> str:
        """The scope as the agent sees it, e.g. ``/workspace/projects/Smith``."""
        return self.session.root

    # -- where things are -------------------------------------------------------------------

    def _searched(self, path: str | None) -> tuple[str, str]:
        """For a search of ``path`` (None: the scope): the folder patterns are relative to, and
        the folder the session searches (``/`` holds only ``/workspace``)."""
        base = self.root if path is None else _trim(path)
        return base, WORKSPACE if base == "/" else base

    # -- reads ----------------------------------------------------------------------------

    def ls(self, path: str) -> LsResult:
        if _trim(path) == "/":
            return LsResult(entries=[{"path": WORKSPACE, "is_dir": True}])
        try:
            item = self.session.stat(path)
            if item is None:
                return LsResult(error=f"Path '{path}': path_not_found")
            if not item.is_dir:
                return LsResult(error=f"Path '{path}': not_a_directory")
            return LsResult(entries=[_info(entry) for entry in self.session.ls(path)])
        except AirlockError as exc:
            return LsResult(error=f"Path '{path}': {_say(exc)}")

    def read(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """The lines ``offset`` .. ``offset + limit`` of a text file (line endings normalised
        to ``\\n``, no trailing newline, at most ~500 KiB), or a binary file whole as base64
        (refused past 500 KiB), as deepagents' sandboxes answer."""
        try:
            data = self.session.read_bytes(file_path)
        except NotFoundError:
            return ReadResult(error=f"File '{file_path}' not found")
        except AirlockError as exc:  # a folder, a path outside the workspace, ...
            return ReadResult(error=f"File '{file_path}': {_say(exc)}")
        if not data:
            return ReadResult(file_data=FileData(content=EMPTY_CONTENT_WARNING, encoding="utf-8"))
        text: str | None = None
        if _get_backend_read_file_type(file_path) == "text":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            if len(data) > MAX_BINARY_BYTES:
                return ReadResult(
                    error=f"File '{file_path}': Binary file exceeds maximum preview size of "
                    f"{MAX_BINARY_BYTES} bytes"
                )
            encoded = base64.standard_b64encode(data).decode("ascii")
            return ReadResult(file_data=FileData(content=encoded, encoding="base64"))
        return _window(text, offset, limit)

    def grep(
        self,
        pattern: str,
        path: str | None = None,
        glob: str | None = None,
        *,
        max_count: int | None = None,
    ) -> GrepResult:
        """Lines that contain ``pattern`` (a literal, not a regex), in text files under
        ``path`` (the scope if None), optionally only in files ``glob`` matches (deepagents'
        include-glob rules)."""
        try:
            matcher = compile_grep_include_glob(glob) if glob else None
        except InvalidGlobPatternError as exc:
            return GrepResult(error=str(exc))
        base, searched = self._searched(path)
        # One more than asked tells a cut-short search; with a glob, the filter comes after.
        most = max_count + 1 if max_count is not None and matcher is None else None
        found: list[GrepMatch] = []
        try:
            for match in self.session.grep(pattern, path=searched, max_count=most):
                if matcher is None or matcher(_relative_to_root(match.path, base)):
                    found.append({"path": match.path, "line": match.line, "text": match.text})
        except NotFoundError:
            return GrepResult(matches=[])
        except AirlockError as exc:
            return GrepResult(error=f"Cannot search '{path or self.root}': {_say(exc)}")
        if max_count is not None and len(found) > max_count:
            return GrepResult(matches=found[:max_count], truncated=True)
        return GrepResult(matches=found)

    def glob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Files (never folders) under ``path`` (the scope if None) that ``pattern`` matches,
        by deepagents' own matcher; paths are absolute."""
        try:
            matcher = compile_grep_include_glob(pattern)
        except InvalidGlobPatternError as exc:
            return GlobResult(error=str(exc))
        base, searched = self._searched(path)
        try:
            top = self.session.stat(searched)
            if top is None:
                return GlobResult(matches=[])
            items = [top] if not top.is_dir else self.session.walk(searched)
        except NotFoundError:
            return GlobResult(matches=[])
        except AirlockError as exc:
            return GlobResult(error=f"Cannot search '{path or self.root}': {_say(exc)}")
        found = [
            _info(item)
            for item in items
            if not item.is_dir and matcher(_relative_to_root(item.path, base))
        ]
        return GlobResult(matches=sorted(found, key=lambda info: info["path"]))

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        answers: list[FileDownloadResponse] = []
        for path in paths:
            content, error = self._download(path)
            answers.append(FileDownloadResponse(path=path, content=content, error=error))
        return answers

    def _download(self, path: str) -> tuple[bytes | None, str | None]:
        if not path.startswith("/"):
            return None, INVALID_PATH
        try:
            return self.session.read_bytes(path), None
        except AirlockError as exc:
            if isinstance(exc, InputError) and not isinstance(exc, UnsafePathError):
                with contextlib.suppress(AirlockError):
                    item = self.session.stat(path)
                    if item is not None and item.is_dir:
                        return None, IS_DIRECTORY
            return None, _operation_error(exc)

    # -- changes (into the pending plan) ----------------------------------------------------

    def write(self, file_path: str, content: str) -> WriteResult:
        """Create or overwrite ``file_path`` in the pending plan (parents are made as needed)."""
        try:
            self.session.write(file_path, content, overwrite=True)
        except AirlockError as exc:
            return WriteResult(error=f"Cannot write '{file_path}': {_say(exc)}")
        return WriteResult(path=file_path)

    def edit(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
    ) -> EditResult:
        """Replace ``old_string`` (exactly once, or every time with ``replace_all``) in the
        pending plan. Refusals read like deepagents' own backends'."""
        if not old_string:
            return EditResult(error=EMPTY_OLD_STRING_ERROR)
        try:
            data = self.session.read_bytes(file_path)
        except NotFoundError:
            return EditResult(error=f"Error: File '{file_path}' not found")
        except AirlockError as exc:
            return EditResult(error=f"Error editing file '{file_path}': {_say(exc)}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return EditResult(error=f"Error: File '{file_path}' is not a text file")
        old, new = _as_in_file(text, old_string, new_string)
        count = text.count(old)
        if count == 0:
            refused = perform_string_replacement(text, old_string, new_string, replace_all)
            if isinstance(refused, str):
                return EditResult(error=refused)
        if count > 1 and not replace_all:
            return EditResult(
                error=f"Error: String '{old_string}' appears multiple times ({count}) in the "
                "file. Use replace_all=True to replace all occurrences, or give a longer "
                "string with surrounding context."
            )
        try:
            replaced = self.session.edit(file_path, old, new, replace_all=replace_all)
        except AirlockError as exc:
            return EditResult(error=f"Error editing file '{file_path}': {_say(exc)}")
        return EditResult(path=file_path, occurrences=replaced)

    def delete(self, file_path: str) -> DeleteResult:
        """Delete a file or a folder (with everything in it) in the pending plan."""
        try:
            self.session.delete(file_path)
        except NotFoundError:
            return DeleteResult(error=f"Error: '{file_path}' not found")
        except AirlockError as exc:
            return DeleteResult(error=f"Error deleting '{file_path}': {_say(exc)}")
        return DeleteResult(path=file_path)

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Each file goes into the pending plan (created or overwritten, parents made)."""
        answers: list[FileUploadResponse] = []
        for path, content in files:
            error: str | None = None
            if not path.startswith("/"):
                error = INVALID_PATH
            else:
                try:
                    self.session.write(path, content, overwrite=True)
                except AirlockError as exc:
                    error = _operation_error(exc)
            answers.append(FileUploadResponse(path=path, error=error))
        return answers

    # -- code -----------------------------------------------------------------------------

    def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        """Run ``command`` (a shell command line) in Airlock's sandbox, in the scope, over the
        scope plus the pending changes; what it changes joins the pending plan."""
        try:
            ran = self.session.execute(command, timeout=timeout or None)
        except AirlockError as exc:
            return ExecuteResponse(output=f"Error: {_say(exc)}", exit_code=None)
        output = ran.output
        if ran.changes or ran.skipped or ran.exit_code is None:
            # What Airlock did with the run (changes pending, what it could not keep, or why it
            # stopped) for the model; a command that changed nothing answers with its output.
            if output and not output.endswith("\n"):
                output += "\n"
            output += f"[airlock: {ran.summary}]"
        return ExecuteResponse(output=output, exit_code=ran.exit_code, truncated=ran.truncated)


def airlock_tools(
    backend: AirlockBackend,
    *,
    approver_token: str | None = None,
    ask_approval: AskApproval = "when_needed",
) -> list[BaseTool]:
    """The LangChain tools deepagents' protocol lacks, over the backend's session:
    ``move_file``, ``copy_file``, ``create_directory``, ``show_diff``, ``discard_changes``,
    ``submit_plan``, ``validate_plan``, ``plan_status``, ``apply_plan``, ``rollback_plan`` and
    the firm's ``reorganize_case_files`` / ``execute_mutation_plan``
    (:data:`airlock.agents.langchain.PLAN_TOOLS`). Pass them as ``create_deep_agent(tools=...)``.

    ``submit_plan`` pauses a LangGraph run for a person's decision (it needs a checkpointer);
    ``approver_token`` and ``ask_approval`` are :func:`airlock.agents.langchain.airlock_tools`'s.
    """
    from airlock.agents.langchain import session_tools

    return session_tools(backend.session, approver_token=approver_token, ask_approval=ask_approval)


# -- helpers ----------------------------------------------------------------------------------


def _info(item: Item) -> FileInfo:
    info: FileInfo = {"path": item.path, "is_dir": item.is_dir, "size": item.size}
    if item.modified_at is not None:
        info["modified_at"] = item.modified_at
    return info


def _operation_error(exc: AirlockError) -> str:
    """A refusal as one of the protocol's upload/download error codes where one fits."""
    if isinstance(exc, NotFoundError):
        return FILE_NOT_FOUND
    if isinstance(exc, NotPermittedError):
        return PERMISSION_DENIED
    if isinstance(exc, InputError):
        return INVALID_PATH
    return _say(exc)


def _as_in_file(text: str, old: str, new: str) -> tuple[str, str]:
    """``old`` and ``new`` with the line endings the file uses where ``old`` matches: reads
    show ``\\n`` only, so a model's ``old`` for a CRLF file needs its ``\\r\\n`` back."""
    if old in text or "\n" not in old:
        return old, new
    crlf_old = old.replace("\r\n", "\n").replace("\n", "\r\n")
    if crlf_old in text:
        return crlf_old, new.replace("\r\n", "\n").replace("\n", "\r\n")
    return old, new


def _lines(text: str) -> list[str]:
    """The lines of ``text`` as Python's universal newlines split them, without endings."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _window(text: str, offset: int, limit: int) -> ReadResult:
    offset, limit = normalize_read_bounds(offset, limit)
    if limit == 0:
        return ReadResult(file_data=FileData(content="", encoding="utf-8"), no_lines_requested=True)
    lines = _lines(text)
    total = len(lines)
    if offset >= total:
        return ReadResult(error=f"Line offset {offset} exceeds file length ({total} lines)")
    budget = MAX_OUTPUT_BYTES - len(TRUNCATION_MSG.encode("utf-8"))
    parts: list[str] = []
    used = 0
    truncated = False
    for line in lines[offset : offset + limit]:
        piece = line if not parts else "\n" + line
        size = len(piece.encode("utf-8"))
        if used + size > budget:
            truncated = True
            head = piece.encode("utf-8")[: budget - used].decode("utf-8", errors="ignore")
            shown = len(parts)
            parts.append(head)
            break
        parts.append(piece)
        used += size
    else:
        shown = len(parts)
    content = "".join(parts) + (TRUNCATION_MSG if truncated else "")
    end = offset + max(shown, 1)
    return ReadResult(
        file_data=FileData(content=content, encoding="utf-8"),
        total_lines=total,
        start_line=offset + 1,
        end_line=end,
        next_offset=end if end < total else None,
    )
