"""Who sandboxed code runs as on the host: never root, never the account that owns the workspace.

A run's code is given a host user and group id of its own, which owns nothing:

- when Airlock runs as root, the ids of the account ``airlock-sandbox`` if the host has one
  (``useradd --system --no-create-home airlock-sandbox``; see docs/operating.md), else
  :data:`DEFAULT_HOST_ID`, an id above every range that ``useradd`` or systemd hand out;
- when Airlock runs as another user, the first id of that user's subordinate range
  (``/etc/subuid`` and ``/etc/subgid``, mapped with Debian's ``newuidmap``/``newgidmap`` from the
  ``uidmap`` package). Without such a range there is no id to give the code, and runs refuse to
  start, saying how to add one.

A backend that runs the code as a host process (bubblewrap) is started as these ids, so even
its own set-up runs unprivileged; gVisor runs the code as them inside its own kernel.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

SANDBOX_ACCOUNT = "airlock-sandbox"
DEFAULT_HOST_ID = 2_000_000_000
"""Above useradd's ranges and systemd's container range (which ends at 1,879,048,191)."""

INNER_ID = 1000
"""The id the code sees for itself inside the sandbox."""


@dataclass(frozen=True)
class SandboxIds:
    """The host ids a run's code gets, and how the launcher reaches them.

    ``host_uid``/``host_gid`` are the ids on the host. ``launch_uid``/``launch_gid`` are the same
    ids as the launcher names them: equal when Airlock is root; inside the launcher's own user
    namespace (where the subordinate range starts at 1) when it is not. ``subordinate`` is the
    host range to map, for a launcher that is not root: (first uid, first gid, count).
    """

    host_uid: int
    host_gid: int
    launch_uid: int
    launch_gid: int
    subordinate: tuple[int, int, int] | None = None


def _subordinate(path: Path, user: str, uid: int) -> tuple[int, int] | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in (user, str(uid)):
            try:
                return int(fields[1]), int(fields[2])
            except ValueError:
                continue
    return None


def _no_new_privileges() -> bool:
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("NoNewPrivs:"):
                return line.split()[1] == "1"
    except OSError:
        pass
    return False


def sandbox_ids(workspace_owner: int) -> SandboxIds | str:
    """The ids for a run's code, or why there are none here and how to fix it."""
    euid = os.geteuid()
    if euid == 0:
        try:
            account = pwd.getpwnam(SANDBOX_ACCOUNT)
            uid, gid = account.pw_uid, account.pw_gid
        except KeyError:
            uid = gid = DEFAULT_HOST_ID
        if uid in (0, workspace_owner) or gid == 0:
            return (
                f"the account {SANDBOX_ACCOUNT!r} has uid {uid} / gid {gid}, which is root or owns "
                "the workspace; give it ids of its own (userdel it to use the built-in default)"
            )
        return SandboxIds(uid, gid, uid, gid)
    user = pwd.getpwuid(euid).pw_name
    subuid = _subordinate(Path("/etc/subuid"), user, euid)
    subgid = _subordinate(Path("/etc/subgid"), user, euid)
    helpers = shutil.which("newuidmap") and shutil.which("newgidmap")
    if subuid is None or subgid is None or not helpers:
        return (
            f"Airlock runs as {user!r}, not root, so sandboxed code needs a subordinate id range "
            f"of {user!r} to run as (it must never run as the workspace's owner): "
            f"`apt-get install uidmap` and `usermod --add-subuids 200000-265535 "
            f"--add-subgids 200000-265535 {user}`"
        )
    if _no_new_privileges():
        return (
            "this process has no_new_privs set (systemd's NoNewPrivileges=yes), so newuidmap "
            "cannot map the subordinate ids the code must run as: install "
            "deploy/airlock.service.d/sandbox.conf (see docs/operating.md)"
        )
    if workspace_owner in range(subuid[0], subuid[0] + subuid[1]):
        return f"the workspace's owner (uid {workspace_owner}) is inside {user!r}'s subordinate ids"
    count = min(subuid[1], subgid[1], 65536)
    return SandboxIds(subuid[0], subgid[0], 1, 1, (subuid[0], subgid[0], count))
