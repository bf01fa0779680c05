"""A user-space kernel between the code and the host: gVisor (Debian's ``runsc``).

Airlock writes an OCI bundle (``config.json`` and an empty root folder) into the run's scratch
folder and starts ``runsc run`` on it. runsc needs root on the host; the code inside runs as the
sandbox's own root with no capabilities at all, inside gVisor's kernel (the sentry), which runs
on the host unprivileged in a user namespace of its own. Its processes stay in the run's cgroup
(``--ignore-cgroups``), so the run's memory and process limits bound the sentry and gofer too.

Known limit of the runsc Debian ships (release 2022-12-19): it answers ``statx`` calls with the
flags GNU coreutils 9 use with "Invalid argument", so ``ls`` and ``stat`` fail inside; Python,
``cat``, ``cp``, ``mv`` and most other programs work.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

from airlock.sandbox import seccomp
from airlock.sandbox.base import (
    SANDBOX_SHM,
    SANDBOX_TMP,
    SCOPE_MOUNT,
    WORKSPACE_MOUNT,
    Request,
    Sandbox,
    default_env,
)
from airlock.sandbox.system import ETC_FILES, ROOT_LINKS, sandbox_passwd


def _bind(source: str | Path, destination: str, *, writable: bool = False) -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "bind",
        "source": str(source),
        "options": ["rbind", "rw" if writable else "ro", "nosuid", "nodev"],
    }


_REFUSED_SOCKET_FAMILIES = (15, 17, 38, 40)
"""AF_KEY, AF_PACKET, AF_ALG, AF_VSOCK: families bwrap's filter refuses too."""


def _oci_seccomp() -> dict[str, Any]:
    """Airlock's filter (:mod:`airlock.sandbox.seccomp`) in OCI form, applied by gVisor's own
    kernel to the code: the unconditional refusals, and the socket families above."""
    names = sorted({rule.syscall for rule in seccomp.DENIED if not rule.condition})
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
            *(
                {
                    "names": ["socket"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": errno.EAFNOSUPPORT,
                    "args": [{"index": 0, "value": family, "op": "SCMP_CMP_EQ"}],
                }
                for family in _REFUSED_SOCKET_FAMILIES
            ),
        ],
    }


class Gvisor(Sandbox):
    name = "gvisor"
    needs_root = True
    helper_tasks = 1024  # the sentry's and gofer's Go threads; the sentry counts the code's own

    def problem(self) -> str | None:
        if shutil.which("runsc") is None:
            return "gVisor is not installed (apt-get install runsc, or `make sandbox-tools`)"
        if os.geteuid() != 0:
            return "the gvisor sandbox needs Airlock to run as root; use --sandbox bwrap"
        return None

    def argv(self, request: Request) -> list[str]:
        bundle = request.scratch / "bundle"
        rootfs = bundle / "rootfs"
        for folder in ("usr", "etc", "proc", "dev", "tmp", "scope", "workspace"):
            (rootfs / folder).mkdir(parents=True, exist_ok=True)
        mounts: list[dict[str, Any]] = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["size=1048576", "nosuid", "noexec"],
            },
            {
                "destination": SANDBOX_SHM,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": [f"size={request.limits.write}", "nosuid", "nodev"],
            },
            {
                "destination": SANDBOX_TMP,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": [f"size={request.limits.write}", "nosuid", "nodev"],
            },
            _bind("/usr", "/usr"),
        ]
        for name in ROOT_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                link = rootfs / name
                if not link.is_symlink():
                    link.symlink_to(host.readlink())
            elif host.is_dir():
                (rootfs / name).mkdir(exist_ok=True)
                mounts.append(_bind(host, f"/{name}"))
        etc = [*ETC_FILES, *(("resolv.conf", "hosts") if request.network else ())]
        for name in etc:
            host = Path("/etc") / name
            if host.exists():
                mounts.append(_bind(host, f"/etc/{name}"))
        passwd, group = sandbox_passwd(request.scratch, request.run_as[0])
        mounts += [_bind(passwd, "/etc/passwd"), _bind(group, "/etc/group")]
        # The root is read-only: /workspace holds only the mount points made for it here.
        for path in (*(area.path for area in request.reads), request.scope):
            (rootfs / "workspace").joinpath(*path).mkdir(parents=True, exist_ok=True)
        for area in request.reads:
            mounts.append(_bind(area.host, "/".join((WORKSPACE_MOUNT, *area.path))))
        inside = "/".join((WORKSPACE_MOUNT, *request.scope))
        mounts += [
            _bind(request.view, inside, writable=True),
            _bind(request.view, SCOPE_MOUNT, writable=True),
        ]
        no_caps: list[str] = []
        config = {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False,
                # The ids the view is shown as owned by: the sandbox's, never host root's.
                "user": {"uid": request.run_as[0], "gid": request.run_as[1]},
                "args": list(request.command),
                "env": [f"{key}={value}" for key, value in default_env(request)],
                "cwd": SCOPE_MOUNT,
                "noNewPrivileges": True,
                "capabilities": {
                    kind: no_caps
                    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient")
                },
                "rlimits": [
                    {
                        "type": "RLIMIT_AS",
                        "hard": request.limits.memory,
                        "soft": request.limits.memory,
                    },
                    # The run's cgroup counts the sentry's host threads, not the sandbox's
                    # processes; the sentry enforces this limit on those itself.
                    {
                        "type": "RLIMIT_NPROC",
                        "hard": request.limits.processes,
                        "soft": request.limits.processes,
                    },
                ],
            },
            "root": {"path": "rootfs", "readonly": True},
            "hostname": "airlock",
            "mounts": mounts,
            "linux": {
                "seccomp": _oci_seccomp(),
                # With --network host, runsc uses the network namespace it runs in; asking for
                # a new one as well leaves the sandbox with no network at all.
                "namespaces": [
                    {"type": kind}
                    for kind in ("pid", "network", "ipc", "uts", "mount")
                    if not (kind == "network" and request.network)
                ],
            },
        }
        (bundle / "config.json").write_text(json.dumps(config), encoding="utf-8")
        (bundle / "config.json").chmod(0o600)  # the command and its environment: root's only
        # The sentry runs unprivileged: every folder of the root must be traversable by it,
        # whatever Airlock's umask made of it.
        for folder, _, _ in os.walk(bundle):
            Path(folder).chmod(0o755)
        return [
            shutil.which("runsc") or "runsc",
            "--root",
            str(request.scratch / "runsc-state"),
            "--network",
            "host" if request.network else "none",
            # Stay in the run's cgroup, whose limits count the sentry and the gofer too.
            "--ignore-cgroups",
            # Apply the config's seccomp filter inside the sandbox, to the code's calls.
            "--oci-seccomp",
            "run",
            "--bundle",
            str(bundle),
            f"airlock-{request.scratch.name}",
        ]
