"""An agent session on a remote ``airlock serve``: the same methods as
:class:`~airlock.agents.session.AgentSession`, each one ``POST /api/v1/agent/{call}`` with the
agent's token, so every door (deepagents backend, LangChain tools) works the same against a
service as in process. Errors come back as the same :class:`~airlock.errors.AirlockError`
classes."""

from __future__ import annotations

from typing import Any

import httpx

from airlock.agents import wire
from airlock.agents.session import Item, Match, Ran
from airlock.errors import StorageError
from airlock.permissions import Principal
from airlock.records import ApplyResult, PlanRecord


class RemoteSession:
    """``scope`` on the Airlock service at ``url`` (e.g. ``http://127.0.0.1:8080``), acting as
    ``token``'s principal."""

    def __init__(self, url: str, *, scope: str, token: str, timeout: float = 330.0) -> None:
        self.url = url
        self.scope = scope
        self._timeout = timeout
        self._by: Principal | None = None
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
        self.root = "/workspace/" + scope.strip("/")
        self.id = f"airlock:{url.rstrip('/')}:{scope}"

    def close(self) -> None:
        self._http.close()

    @property
    def by(self) -> Principal:
        """Who the token is (asked of the service once)."""
        if self._by is None:
            self._by = self.whoami()
        return self._by

    def whoami(self) -> Principal:
        found: Principal = self._call("whoami")
        return found

    def acting_as(self, token: str) -> RemoteSession:
        """This scope as another token's principal (an approver's); checked by the service."""
        other = RemoteSession(self.url, scope=self.scope, token=token, timeout=self._timeout)
        try:
            other._by = other.whoami()  # an invalid token is refused now, as in process
        except BaseException:
            other.close()
            raise
        return other

    def _call(self, call: str, **args: Any) -> Any:
        try:
            answer = self._http.post(
                f"/api/v1/agent/{call}",
                json={"scope": self.scope, "args": {k: wire.encode(v) for k, v in args.items()}},
            )
        except httpx.HTTPError as exc:
            raise StorageError(
                f"could not reach the Airlock service: {exc}",
                hint="check that `airlock serve` runs at that address",
            ) from None
        body = answer.json() if answer.content else None
        if answer.status_code >= 400 or not isinstance(body, dict):
            raise wire.error_from(body, answer.status_code)
        return wire.decode(call, body["result"])

    # reads
    def stat(self, path: str) -> Item | None:
        found: Item | None = self._call("stat", path=path)
        return found

    def ls(self, path: str) -> list[Item]:
        found: list[Item] = self._call("ls", path=path)
        return found

    def walk(self, path: str) -> list[Item]:
        found: list[Item] = self._call("walk", path=path)
        return found

    def read_bytes(self, path: str) -> bytes:
        data: bytes = self._call("read_bytes", path=path)
        return data

    def glob(self, pattern: str, path: str | None = None) -> list[Item]:
        found: list[Item] = self._call("glob", pattern=pattern, path=path)
        return found

    def grep(
        self,
        literal: str,
        path: str | None = None,
        glob: str | None = None,
        max_count: int | None = None,
    ) -> list[Match]:
        found: list[Match] = self._call(
            "grep", literal=literal, path=path, glob=glob, max_count=max_count
        )
        return found

    def readable_roots(self) -> list[str]:
        roots: list[str] = self._call("readable_roots")
        return roots

    # changes
    def write(
        self, path: str, data: bytes | str, *, overwrite: bool = True, reason: str = ""
    ) -> None:
        self._call("write", path=path, data=data, overwrite=overwrite, reason=reason)

    def edit(
        self, path: str, old: str, new: str, *, replace_all: bool = False, reason: str = ""
    ) -> int:
        count: int = self._call(
            "edit", path=path, old=old, new=new, replace_all=replace_all, reason=reason
        )
        return count

    def delete(self, path: str, *, reason: str = "") -> None:
        self._call("delete", path=path, reason=reason)

    def move(self, source: str, destination: str, *, reason: str = "") -> None:
        self._call("move", source=source, destination=destination, reason=reason)

    def copy(self, source: str, destination: str, *, reason: str = "") -> None:
        self._call("copy", source=source, destination=destination, reason=reason)

    def mkdir(self, path: str, *, reason: str = "") -> None:
        self._call("mkdir", path=path, reason=reason)

    def pending(self) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = self._call("pending")
        return ops

    def diff(self) -> str:
        text: str = self._call("diff")
        return text

    def discard(self) -> int:
        count: int = self._call("discard")
        return count

    # plans and code
    def submit(self, description: str, *, plan_id: str | None = None) -> PlanRecord:
        record: PlanRecord = self._call("submit", description=description, plan_id=plan_id)
        return record

    def validate(self, plan_id: str) -> PlanRecord:
        record: PlanRecord = self._call("validate", plan_id=plan_id)
        return record

    def status(self, plan_id: str) -> PlanRecord:
        record: PlanRecord = self._call("status", plan_id=plan_id)
        return record

    def apply(self, plan_id: str) -> ApplyResult:
        result: ApplyResult = self._call("apply", plan_id=plan_id)
        return result

    def rollback(self, plan_id: str) -> ApplyResult:
        result: ApplyResult = self._call("rollback", plan_id=plan_id)
        return result

    def approve(
        self, plan_id: str, comment: str = "", validation_id: int | None = None
    ) -> PlanRecord:
        record: PlanRecord = self._call(
            "approve", plan_id=plan_id, comment=comment, validation_id=validation_id
        )
        return record

    def reject(
        self, plan_id: str, comment: str = "", validation_id: int | None = None
    ) -> PlanRecord:
        record: PlanRecord = self._call(
            "reject", plan_id=plan_id, comment=comment, validation_id=validation_id
        )
        return record

    def submit_plan(self, plan: dict[str, Any], plan_id: str | None = None) -> PlanRecord:
        record: PlanRecord = self._call("submit_plan", plan=plan, plan_id=plan_id)
        return record

    def execute(self, command: str, *, timeout: int | None = None) -> Ran:
        ran: Ran = self._call("execute", command=command, timeout=timeout)
        return ran
