"""The seccomp filter around bubblewrap runs: allow by default, refuse the kernel's risky corners.

The policy follows Docker's default profile (``moby/profiles/seccomp/default.json``), read as a
deny list: everything a program that reads and writes files needs stays allowed, and the calls
that reach a large or privileged kernel surface, other processes, the host's global state, or a
new namespace are refused with ``EPERM`` (``clone3`` with ``ENOSYS``, so that glibc falls back to
``clone``, whose flags a filter can see). Refusing with an error rather than killing gives the
program a clear message (``Operation not permitted``) instead of a mysterious ``SIGSYS``.

:data:`DENIED` lists every rule, with the reason, for the docs. Names this libseccomp or this
architecture does not know (``vm86`` on aarch64, say) are skipped. A system call of another
architecture (a 32-bit ``int 0x80`` or an x32 call from a 64-bit process, the classic way around a
filter) kills the process: the filter only describes the native one.

Arguments the kernel reads as 32-bit values (``socket``'s domain, ``ioctl``'s request,
``personality``) are compared on their low 32 bits only, as the kernel reads them, so that junk in
the upper half of a register cannot slip past a rule.

Use :func:`filter_bytes` (the compiled BPF program, for ``bwrap --seccomp FD``) or
:func:`filter_fd` (a fresh memfd holding it); :func:`problem` says what to install when
libseccomp is missing.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALLOWED_PERSONALITIES",
    "ALLOWED_SOCKET_DOMAINS",
    "DENIED",
    "DENIED_SYSCALLS",
    "Denied",
    "complement_blocks",
    "filter_bytes",
    "filter_fd",
    "problem",
]


@dataclass(frozen=True)
class Denied:
    """One rule of the filter: ``syscall`` is refused with ``errno`` (when ``condition`` holds)."""

    syscall: str
    why: str
    condition: str = ""
    errno: int = errno.EPERM


def _always(why: str, *names: str) -> tuple[Denied, ...]:
    return tuple(Denied(name, why) for name in names)


ALLOWED_SOCKET_DOMAINS = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}
"""The only address families ``socket`` may open. AF_NETLINK stays: glibc's ``getaddrinfo``
and ``if_nameindex`` open ``NETLINK_ROUTE`` sockets, the run's own network namespace shows only
its loopback, and the netlink families that change anything (netfilter, xfrm, …) need
``CAP_NET_ADMIN``, which the code cannot gain (no capabilities, no new user namespace). Every
other family is refused: AF_VSOCK reaches the hypervisor host, AF_KEY and AF_PACKET are
privileged, and the rest (AF_ALG, AF_RDS, AF_TIPC, AF_CAN, Bluetooth, X.25, …) are rarely used,
autoload kernel modules, and have a record of local privilege escalations."""

ALLOWED_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
"""Docker's allowed ``personality`` values: PER_LINUX, PER_LINUX32, UNAME26, both, and the
query (0xffffffff). Others (READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, ADDR_NO_RANDOMIZE, …) weaken
memory protections."""

_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

_TERMINAL_IOCTLS = {"TIOCSTI": 0x5412, "TIOCLINUX": 0x541C}

DENIED: tuple[Denied, ...] = (
    *_always(
        "io_uring: a large, fast-moving kernel surface with a long record of privilege "
        "escalations; Docker, ChromeOS and Android refuse it",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ),
    *_always(
        "lets code stall the kernel in the middle of a copy, a staple of kernel race exploits",
        "userfaultfd",
    ),
    *_always(
        "loads programs into the kernel or reads its performance counters: kernel attack "
        "surface and side channels",
        "bpf",
        "perf_event_open",
    ),
    *_always(
        "loads, replaces or removes kernel code",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "create_module",
        "get_kernel_syms",
        "query_module",
    ),
    *_always(
        "kernel keyrings are not namespaced: keys of the host would be in reach",
        "add_key",
        "request_key",
        "keyctl",
    ),
    *_always(
        "reads or controls another process (a debugger, other processes' memory or file "
        "descriptors); code in a run needs none",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "process_madvise",
        "kcmp",
        "pidfd_getfd",
    ),
    *_always(
        "mounts and namespaces are the sandbox's walls; only bubblewrap sets them up",
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "unshare",
        "setns",
    ),
    *(
        Denied("clone", "a new namespace is a way around the sandbox's walls", f"flags & {name}")
        for name in _NAMESPACE_FLAGS
    ),
    Denied(
        "clone3",
        "its flags sit in memory a filter cannot read; ENOSYS makes glibc fall back to clone",
        errno=errno.ENOSYS,
    ),
    *_always(
        "opens files by handle, past every path check (the 'shocker' container escape)",
        "open_by_handle_at",
        "name_to_handle_at",
    ),
    *_always(
        "changes or reads the host's global state (clock, swap, quotas, accounting, kernel log, "
        "the terminal of others, filesystem monitoring)",
        "reboot",
        "swapon",
        "swapoff",
        "settimeofday",
        "stime",
        "clock_settime",
        "clock_adjtime",
        "adjtimex",
        "acct",
        "quotactl",
        "quotactl_fd",
        "syslog",
        "vhangup",
        "lookup_dcookie",
        "nfsservctl",
        "fanotify_init",
    ),
    *_always("direct hardware port access", "iopl", "ioperm", "vm86", "vm86old"),
    *_always("obsolete calls kept only for old binaries", "uselib", "ustat", "sysfs", "_sysctl"),
    *(
        Denied("ioctl", "pushes keystrokes into a terminal (a classic sandbox escape)", f"{name}")
        for name in _TERMINAL_IOCTLS
    ),
    Denied(
        "socket",
        "only local and IP sockets; see ALLOWED_SOCKET_DOMAINS",
        "domain not in " + ", ".join(ALLOWED_SOCKET_DOMAINS),
    ),
    Denied(
        "personality",
        "unusual personalities weaken memory protections; see ALLOWED_PERSONALITIES",
        "persona not in " + ", ".join(f"{value:#x}" for value in ALLOWED_PERSONALITIES),
    ),
)
"""Every rule of the filter, in the order it is built."""

DENIED_SYSCALLS: tuple[str, ...] = tuple(dict.fromkeys(rule.syscall for rule in DENIED))
"""The names of the system calls the filter refuses, entirely or for some arguments."""

_LOW32 = 0xFFFFFFFF


def complement_blocks(allowed: Iterable[int], bits: int = 32) -> list[tuple[int, int]]:
    """``(mask, value)`` pairs whose matches (``x & mask == value``) are exactly the
    ``bits``-wide values not in ``allowed``: the fewest aligned blocks that cover them.

    libseccomp refuses two comparisons of one argument in one rule, so "not one of these" is
    written as one masked-equality rule per block.
    """
    top = (1 << bits) - 1
    wanted = sorted({value & top for value in allowed})

    def cover(start: int, size_bits: int, inside: list[int]) -> Iterator[tuple[int, int]]:
        if not inside:
            yield top ^ ((1 << size_bits) - 1), start
            return
        if size_bits == 0:
            return
        half = 1 << (size_bits - 1)
        middle = start + half
        yield from cover(start, size_bits - 1, [v for v in inside if v < middle])
        yield from cover(middle, size_bits - 1, [v for v in inside if v >= middle])

    return list(cover(0, bits, wanted))


def problem() -> str | None:
    """Why the filter cannot be built here, with what to install; None when it can."""
    try:
        import pyseccomp  # noqa: F401
    except ImportError:
        return "the pyseccomp package is missing (reinstall Airlock: pip install airlock)"
    except (OSError, RuntimeError) as error:
        return f"libseccomp is not installed ({error}; apt-get install libseccomp2)"
    return None


def _build() -> Any:
    import pyseccomp as sc

    native = sc.system_arch()
    syscall_filter = sc.SyscallFilter(sc.ALLOW)
    syscall_filter.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    clone_flags_arg = 1 if native in (sc.Arch.S390, sc.Arch.S390X) else 0
    for rule in DENIED:
        if sc.resolve_syscall(sc.Arch.NATIVE, rule.syscall) < 0:
            continue  # unknown to libseccomp, or no such call on this architecture
        action = sc.ERRNO(rule.errno)
        if not rule.condition:
            syscall_filter.add_rule(action, rule.syscall)
        elif rule.syscall == "clone":
            flag = _NAMESPACE_FLAGS[rule.condition.removeprefix("flags & ")]
            syscall_filter.add_rule(
                action, "clone", sc.Arg(clone_flags_arg, sc.MASKED_EQ, flag, flag)
            )
        elif rule.syscall == "ioctl":
            request = _TERMINAL_IOCTLS[rule.condition]
            syscall_filter.add_rule(action, "ioctl", sc.Arg(1, sc.MASKED_EQ, _LOW32, request))
        elif rule.syscall in ("socket", "personality"):
            allowed = (
                ALLOWED_SOCKET_DOMAINS.values()
                if rule.syscall == "socket"
                else ALLOWED_PERSONALITIES
            )
            for mask, value in complement_blocks(allowed):
                syscall_filter.add_rule(action, rule.syscall, sc.Arg(0, sc.MASKED_EQ, mask, value))
        else:  # pragma: no cover - a rule added to DENIED without its arguments here
            raise AssertionError(f"no argument filter for {rule.syscall}")
    return syscall_filter


@functools.cache
def filter_bytes() -> bytes:
    """The compiled filter (a classic BPF program, as ``seccomp_export_bpf`` writes it), for
    ``bwrap --seccomp FD``. Built once per process. Raises OSError or RuntimeError when
    libseccomp is missing (:func:`problem` says so first)."""
    syscall_filter = _build()
    with tempfile.TemporaryFile() as out:
        syscall_filter.export_bpf(out)
        out.seek(0)
        program = out.read()
    if not program or len(program) % 8:
        raise RuntimeError(f"libseccomp exported a malformed filter ({len(program)} bytes)")
    return program


def filter_fd() -> int:
    """A new memfd holding :func:`filter_bytes`, sealed, positioned at its start, not inheritable.

    Pass it to one ``bwrap`` (``pass_fds=(fd,)`` and ``--seccomp str(fd)``) and close it after
    starting it: bwrap reads the descriptor to its end, so each run needs its own.
    """
    program = filter_bytes()
    fd = os.memfd_create("airlock-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(program)
        while view:
            view = view[os.write(fd, view) :]
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
