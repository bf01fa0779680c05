"""The default sandbox: bubblewrap (Debian's ``bubblewrap``), namespaces and bind mounts."""

from __future__ import annotations

import shutil
from pathlib import Path

from airlock.sandbox.base import (
    SANDBOX_TMP,
    SCOPE_MOUNT,
    WORKSPACE_MOUNT,
    Request,
    Sandbox,
    default_env,
)
from airlock.sandbox.system import ETC_FILES, ROOT_LINKS, sandbox_passwd

SANDBOX_UID = 1000


class Bwrap(Sandbox):
    name = "bwrap"

    def problem(self) -> str | None:
        if shutil.which("bwrap") is None:
            return (
                "bubblewrap is not installed (apt-get install bubblewrap, or `make sandbox-tools`)"
            )
        return None

    def argv(self, request: Request) -> list[str]:
        argv = [
            shutil.which("bwrap") or "bwrap",
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "airlock",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        if request.network:
            argv.append("--share-net")
        for name in ROOT_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", str(host.readlink()), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        etc = [*ETC_FILES, *(("resolv.conf", "hosts") if request.network else ())]
        for name in etc:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        passwd, group = sandbox_passwd(request.scratch, SANDBOX_UID)
        argv += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--size", str(request.limits.write), "--tmpfs", SANDBOX_TMP]
        argv += ["--ro-bind", str(request.workspace), WORKSPACE_MOUNT]
        for hidden in request.hidden:
            target = "/".join((WORKSPACE_MOUNT, *hidden))
            argv += ["--size", "4096", "--tmpfs", target, "--remount-ro", target]
        inside = "/".join((WORKSPACE_MOUNT, *request.scope))
        argv += ["--bind", str(request.view), inside, "--bind", str(request.view), SCOPE_MOUNT]
        argv += ["--remount-ro", "/", "--chdir", SCOPE_MOUNT, "--clearenv"]
        for key, value in default_env(request):
            argv += ["--setenv", key, value]
        argv += ["--", *request.command]
        if request.cgroup:
            return argv
        limits = request.limits
        return ["prlimit", f"--as={limits.memory}", f"--nproc={limits.processes}", "--", *argv]
