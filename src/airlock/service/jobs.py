"""Applies and rollbacks run in the background so no request is held open for minutes.

A job is started by one request and followed by others (polling ``GET /api/v1/jobs/{id}`` or the
server-sent events of ``/api/v1/jobs/{id}/events``). Jobs on one scope run one at a time, in the
order they were started; different scopes run in parallel, up to ``apply_workers`` at once.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from airlock.before_after import Listed, list_scope
from airlock.errors import AirlockError, ErrorBody, as_airlock_error
from airlock.locks import lock_key
from airlock.permissions import Principal
from airlock.records import ApplyResult
from airlock.service.plan_view import TREE_LIMIT
from airlock.workspace import Workspace

log = logging.getLogger("airlock.service")

JobState = Literal["queued", "running", "succeeded", "failed"]
JOB_ID_PATTERN = r"^job_[0-9a-f]{12}$"
"""Every job's id: ``job_`` and 12 hex digits (see :meth:`Jobs.start`)."""


@dataclass
class Job:
    id: str
    plan_id: str
    kind: Literal["apply", "rollback"]
    by: Principal
    state: JobState = "queued"
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None
    started_at: float = field(default_factory=time.time)
    listing: tuple[list[Listed], bool] | None = None
    """The scope as it was when the job began (before the plan for an apply, after it for a
    rollback), for the plan's page to draw its trees while the files are between two states;
    None for a plan too large to draw."""
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "plan_id": self.plan_id,
            "kind": self.kind,
            "state": self.state,
            "steps_done": self.done,
            "steps_total": self.total,
            "result": self.result,
            "error": self.error,
        }


class Jobs:
    def __init__(self, ws: Workspace, workers: int) -> None:
        self.ws = ws
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="airlock-apply")
        self._jobs: dict[str, Job] = {}
        # Per scope, the jobs waiting behind the one running. Only a scope's first job holds a
        # worker, so a busy case never keeps jobs for idle cases waiting.
        self._queues: dict[str, collections.deque[tuple[Job, bool]]] = {}
        self._guard = threading.Lock()

    def start(
        self,
        plan_id: str,
        kind: Literal["apply", "rollback"],
        by: Principal,
        *,
        force: bool = False,
    ) -> Job:
        key = lock_key(tuple(self.ws.get(plan_id).plan.scope.split("/")))
        job = Job(id="job_" + secrets.token_hex(6), plan_id=plan_id, kind=kind, by=by)
        with self._guard:
            self._jobs[job.id] = job
            queue = self._queues.setdefault(key, collections.deque())
            queue.append((job, force))
            first = len(queue) == 1
        if first:
            self._pool.submit(self._drain, key)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def running(self, plan_id: str) -> Job | None:
        """The plan's job that has begun and not finished, if this service runs one."""
        with self._guard:
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.plan_id == plan_id and job.state == "running" and not job.finished.is_set():
                return job
        return None

    def _drain(self, key: str) -> None:
        """Run the scope's jobs in order until its queue is empty."""
        more = True
        while more:
            with self._guard:
                job, force = self._queues[key][0]
            try:
                self._run(job, force)
            finally:  # whatever happened, the next job on this scope must not wait forever
                with self._guard:
                    queue = self._queues[key]
                    queue.popleft()
                    more = bool(queue)
                    if not more:
                        del self._queues[key]
                        self._forget_old_jobs()

    def _forget_old_jobs(self, keep: int = 10_000) -> None:
        """Keep the newest ``keep`` finished jobs (call with the guard held)."""
        finished = [job_id for job_id, job in self._jobs.items() if job.finished.is_set()]
        for job_id in finished[: max(0, len(finished) - keep)]:
            del self._jobs[job_id]

    def _run(self, job: Job, force: bool) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            record = self.ws.get(job.plan_id)
            changes = record.validation.changes if record.validation else []
            if len(changes) <= TREE_LIMIT:  # the jobs of a scope run one at a time: nothing moves
                job.listing = list_scope(self.ws.storage, record.plan.scope)
            job.state = "running"
            result: ApplyResult
            if job.kind == "apply":
                result = self.ws.apply(job.plan_id, by=job.by, progress=progress, lock_timeout=300)
            else:
                result = self.ws.rollback(
                    job.plan_id, by=job.by, force=force, progress=progress, lock_timeout=300
                )
            job.result = result.to_dict()
            job.state = "succeeded" if result.success else "failed"
        except AirlockError as exc:
            job.error = exc.to_dict()
            job.state = "failed"
        except Exception as exc:  # a bug: keep the service up, report it on the job
            log.exception("unexpected error in job", extra={"fields": {"job": job.id}})
            job.error = as_airlock_error(exc).to_dict()
            job.state = "failed"
        finally:
            job.finished.set()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
