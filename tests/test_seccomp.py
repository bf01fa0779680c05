"""The seccomp filter (issue 8, M6), tried from inside a real bubblewrap sandbox.

A probe script runs under ``bwrap --seccomp FD`` and makes each system call itself (through
ctypes, or the socket and os modules), reporting ``ok`` or the errno's name; the same probes run
without the filter show that the refusals are the filter's doing, not the host's.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from airlock.sandbox import seccomp

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed (apt-get install bubblewrap); the filter is tried in it",
)

PROBE = r"""
import ctypes, errno, fcntl, json, os, platform, socket, subprocess, sys, termios, threading

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {
    "x86_64": {"io_uring_setup": 425, "userfaultfd": 323, "keyctl": 250, "bpf": 321,
               "ptrace": 101, "clone": 56, "clone3": 435, "socket": 41, "getpid": 39},
    "aarch64": {"io_uring_setup": 425, "userfaultfd": 282, "keyctl": 219, "bpf": 280,
                "ptrace": 117, "clone": 220, "clone3": 435, "socket": 198, "getpid": 172},
}[platform.machine()]
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17


def call(nr, *args):
    ret = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a
                                           for a in args))
    if ret < 0:
        raise OSError(ctypes.get_errno(), "")
    return ret


def checked(ret):
    if ret == -1:
        raise OSError(ctypes.get_errno(), "")
    return ret


def io_uring_setup():
    os.close(call(NR["io_uring_setup"], 4, ctypes.create_string_buffer(120)))

def userfaultfd():
    os.close(call(NR["userfaultfd"], os.O_CLOEXEC | 1))  # UFFD_USER_MODE_ONLY

def socket_family(family, kind=socket.SOCK_STREAM, proto=0):
    def probe():
        socket.socket(family, kind, proto).close()
    return probe

def vsock_high_bits():  # the kernel reads an int: junk above bit 31 must not dodge the rule
    os.close(call(NR["socket"], (1 << 32) | socket.AF_VSOCK, socket.SOCK_STREAM, 0))

def unshare_user():
    checked(libc.unshare(CLONE_NEWUSER))

def mount():
    checked(libc.mount(b"none", b"/tmp", b"tmpfs", ctypes.c_ulong(0), None))

def keyctl():
    call(NR["keyctl"], 0, -4, 1)  # KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, create

def bpf():
    call(NR["bpf"], 0, ctypes.create_string_buffer(128), 128)  # BPF_MAP_CREATE, zeroed attr

def ptrace():
    call(NR["ptrace"], 0, 0, 0, 0)  # PTRACE_TRACEME

def clone_newuser():
    pid = call(NR["clone"], CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

def clone3():
    call(NR["clone3"], None, 88)

def personality(persona):
    def probe():
        libc.personality.restype = ctypes.c_int
        old = checked(libc.personality(ctypes.c_ulong(persona)))
        if persona != 0xFFFFFFFF:
            libc.personality(ctypes.c_ulong(old))
    return probe

def tiocsti():
    fd = os.open("/dev/null", os.O_RDWR)
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
    finally:
        os.close(fd)

def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7

def thread():
    seen = []
    worker = threading.Thread(target=seen.append, args=(1,))
    worker.start()
    worker.join()
    assert seen == [1]

def socket_unix():
    left, right = socket.socketpair()
    left.sendall(b"ping")
    assert right.recv(4) == b"ping"
    left.close()
    right.close()
    socket_family(socket.AF_UNIX)()

def socket_inet():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()

def file_io():
    os.makedirs("/tmp/probe/sub")
    with open("/tmp/probe/sub/a.txt", "w") as out:
        out.write("hello")
    os.rename("/tmp/probe/sub/a.txt", "/tmp/probe/b.txt")
    with open("/tmp/probe/b.txt") as back:
        assert back.read() == "hello"
    assert sorted(os.listdir("/tmp/probe")) == ["b.txt", "sub"]

def python_subprocess():
    done = subprocess.run([sys.executable, "-I", "-c", "print(6 * 7)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout == "42\n"
    assert subprocess.run(["/bin/sh", "-c", "echo hi"], capture_output=True).stdout == b"hi\n"

def x32_getpid():  # another ABI's call: the filter only knows the native one
    call(0x40000000 | NR["getpid"])


PROBES = {
    "io_uring_setup": io_uring_setup, "userfaultfd": userfaultfd,
    "socket_vsock": socket_family(socket.AF_VSOCK), "socket_vsock_high_bits": vsock_high_bits,
    "socket_alg": socket_family(socket.AF_ALG, socket.SOCK_SEQPACKET),
    "socket_key": socket_family(15, socket.SOCK_RAW, 2), "unshare_newuser": unshare_user,
    "mount": mount, "keyctl": keyctl, "bpf": bpf, "clone_newuser": clone_newuser,
    "clone3": clone3, "personality_read_implies_exec": personality(0x0400000),
    "personality_query": personality(0xFFFFFFFF), "ioctl_tiocsti": tiocsti, "fork": fork,
    "thread": thread, "socket_unix": socket_unix, "socket_inet": socket_inet,
    "socket_inet6": socket_family(socket.AF_INET6),
    "socket_netlink": socket_family(socket.AF_NETLINK, socket.SOCK_RAW, 0),
    "file_io": file_io, "subprocess": python_subprocess, "ptrace": ptrace,
    "x32_getpid": x32_getpid,
}

results = {}
for name in sys.argv[1:]:
    try:
        PROBES[name]()
        results[name] = "ok"
    except OSError as error:
        results[name] = errno.errorcode.get(error.errno, str(error.errno))
    except Exception as error:
        results[name] = f"failed: {error!r}"
with open("/proc/self/status") as status:
    results["Seccomp"] = next(l.split()[1] for l in status if l.startswith("Seccomp:"))
results["fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
print(json.dumps(results))
"""

REFUSED = {
    "io_uring_setup": "EPERM",
    "userfaultfd": "EPERM",
    "socket_vsock": "EPERM",
    "socket_vsock_high_bits": "EPERM",
    "socket_alg": "EPERM",
    "socket_key": "EPERM",
    "unshare_newuser": "EPERM",
    "mount": "EPERM",
    "keyctl": "EPERM",
    "bpf": "EPERM",
    "clone_newuser": "EPERM",
    "clone3": "ENOSYS",
    "personality_read_implies_exec": "EPERM",
    "ioctl_tiocsti": "EPERM",
    "ptrace": "EPERM",  # last: should it succeed, the probe would be traced by its parent
}
STILL_WORKS = [
    "fork",
    "thread",
    "socket_unix",
    "socket_inet",
    "socket_inet6",
    "socket_netlink",
    "file_io",
    "subprocess",
    "personality_query",
]
HARMLESS_WITHOUT_FILTER = [
    "io_uring_setup",
    "userfaultfd",
    "socket_vsock",
    "socket_vsock_high_bits",
    "socket_alg",
    "keyctl",
    "clone3",
    "ioctl_tiocsti",
]
"""Probes safe to run unfiltered (nothing of the host changes when they succeed)."""


def bwrap(*probes: str, with_filter: bool) -> subprocess.CompletedProcess[str]:
    argv = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--proc", "/proc"]
    argv += ["--dev", "/dev", "--tmpfs", "/tmp", "--unshare-pid", "--unshare-net"]
    # The probe runs isolated (-I, the standard library only) on the real interpreter, not the
    # virtualenv's link to it: a checkout under /tmp (where CI may clone) is hidden by the tmpfs.
    if sys.base_prefix.startswith("/tmp/"):
        argv += ["--ro-bind", sys.base_prefix, sys.base_prefix]
    argv += ["--unshare-ipc", "--die-with-parent", "--new-session"]
    fd = seccomp.filter_fd() if with_filter else None
    try:
        if fd is not None:
            argv += ["--seccomp", str(fd)]
        argv += ["--", os.path.realpath(sys.executable), "-I", "-c", PROBE, *probes]
        return subprocess.run(
            argv,
            pass_fds=() if fd is None else (fd,),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        if fd is not None:
            os.close(fd)


def probe(*probes: str, with_filter: bool) -> dict[str, object]:
    done = bwrap(*probes, with_filter=with_filter)
    assert done.returncode == 0, done.stderr
    results: dict[str, object] = json.loads(done.stdout)
    return results


def test_libseccomp_is_here() -> None:
    assert seccomp.problem() is None


def test_filter_refuses_the_risky_calls_inside_bwrap() -> None:
    results = probe(*REFUSED, with_filter=True)
    assert results["Seccomp"] == "2"  # filter mode
    assert {name: results[name] for name in REFUSED} == REFUSED


def test_ordinary_programs_still_work_under_the_filter() -> None:
    results = probe(*STILL_WORKS, with_filter=True)
    assert results["Seccomp"] == "2"
    assert {name: results[name] for name in STILL_WORKS} == dict.fromkeys(STILL_WORKS, "ok")


def test_the_refusals_are_the_filters_doing() -> None:
    if Path("/proc/sys/kernel/io_uring_disabled").read_text().strip() not in ("", "0"):
        pytest.skip("this host disables io_uring itself (kernel.io_uring_disabled)")
    results = probe(*HARMLESS_WITHOUT_FILTER, with_filter=False)
    assert results["Seccomp"] == "0"
    assert results["io_uring_setup"] != "EPERM"
    for name in HARMLESS_WITHOUT_FILTER:
        assert results[name] != REFUSED[name], name


def test_the_filter_descriptor_does_not_reach_the_code() -> None:
    results = probe(with_filter=True)
    assert results["fds"] == [0, 1, 2, 3]  # stdio and the listing's own descriptor


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 calls exist only on x86_64")
def test_a_call_of_another_abi_kills_the_process() -> None:
    done = bwrap("x32_getpid", with_filter=True)
    assert done.stdout == ""
    # bwrap reports its child's death by a signal as 128 + the signal's number
    assert done.returncode in (-signal.SIGSYS, 128 + signal.SIGSYS), done


def test_the_filter_is_built_once_and_well_formed() -> None:
    program = seccomp.filter_bytes()
    assert seccomp.filter_bytes() is program
    assert len(program) % 8 == 0
    assert 0 < len(program) // 8 < 4096  # the kernel's BPF_MAXINSNS


def test_filter_fd_holds_the_program() -> None:
    fd = seccomp.filter_fd()
    try:
        assert os.read(fd, 1 << 20) == seccomp.filter_bytes()
        assert not os.get_inheritable(fd)
        with pytest.raises(PermissionError):
            os.write(fd, b"x")  # sealed
    finally:
        os.close(fd)


def test_denied_lists_what_the_brief_names() -> None:
    for name in ("io_uring_setup", "userfaultfd", "bpf", "ptrace", "unshare", "setns", "mount"):
        assert name in seccomp.DENIED_SYSCALLS
    assert all(rule.why for rule in seccomp.DENIED)
    assert [rule.syscall for rule in seccomp.DENIED if rule.errno != 1] == ["clone3"]


@pytest.mark.parametrize(
    "allowed", [[], [0], [255], [1, 2, 10, 16], [0, 8, 0x20, 0x28, 0xFF], list(range(256))]
)
def test_complement_blocks_cover_exactly_the_rest(allowed: list[int]) -> None:
    blocks = seccomp.complement_blocks(allowed, bits=8)
    for value in range(256):
        matches = sum(value & mask == block for mask, block in blocks)
        assert matches == (0 if value in allowed else 1), value
