"""The slice of the host system every sandbox shows: programs and libraries, and no secrets."""

from __future__ import annotations

from pathlib import Path

ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
"""Top-level folders that are links into /usr on a merged-/usr system, or folders of their own."""

ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "nsswitch.conf",
    "mime.types",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "python3",
    "python3.11",
)
"""Files of /etc that programs need and that tell nothing about the host (no shadow, no keys)."""


PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
"""Parts of ``/proc`` that reach the host's kernel; a sandbox shows them read-only (as Docker)."""


def passwd_files(uid: int) -> dict[str, str]:
    """The sandbox's ``passwd`` and ``group``: only root, the agent (``uid``) and nobody."""
    return {
        "passwd": "root:x:0:0:root:/root:/bin/sh\n"
        f"agent:x:{uid}:{uid}:Airlock sandbox:/tmp:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nagent:x:{uid}:\nnogroup:x:65534:\n",
    }


def sandbox_passwd(scratch: Path, uid: int) -> tuple[Path, Path]:
    """:func:`passwd_files` written into ``scratch``, for a backend that binds files by path;
    readable by the code's own ids whatever the umask."""
    written = []
    for name, text in passwd_files(uid).items():
        path = scratch / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)
        written.append(path)
    return written[0], written[1]
