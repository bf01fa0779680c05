"""The one conformance suite every sandbox backend passes (see ``airlock.sandbox.base``).

Written once, in the style of ``storage_conformance.py``: :class:`SandboxConformance` holds the
tests and one abstract fixture, ``sandbox``, the name a backend is registered under. A backend's
test module subclasses it, provides that fixture, and skips where the backend cannot run.

Every test goes through the real entry point, :func:`airlock.runs.run`, with real code inside the
real sandbox over a real workspace, and asserts a clear result. The commands avoid ``ls`` and
``stat``: the runsc Debian ships answers the ``statx`` flags GNU coreutils 9 use with "Invalid
argument", so the suite uses ``python3 -c``, shell builtins, ``cat`` and ``mv`` instead.

After every test the suite checks that no run left a mount, a scratch folder or a cgroup behind.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import select
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from airlock import runs
from airlock.plan import Write
from airlock.records import PlanRecord
from airlock.runs import RunResult
from airlock.sandbox import cgroup
from airlock.sandbox.base import Limits
from airlock.tokens import Role, create_token
from airlock.workspace import Workspace
from support import CASE, person, snapshot

OTHER_CASE = "projects/OtherCase"
RECORDS_CASE = "projects/Doe-v-Mercy"

QUICK = Limits(timeout=30, memory=1 << 30, processes=128, output=1 << 20, write=64 << 20)
"""Limits for ordinary runs: generous, but a hung run cannot hold the suite for long."""

BOMB = Limits(timeout=20, memory=512 << 20, processes=64, output=1 << 20, write=64 << 20)
"""Small limits for the fork and memory bombs, so they hit a limit fast."""

SCANS = {
    "scan_0001_mercy_hospital.pdf": "Mercy Hospital",
    "scan_0002_dr_lee_ortho.pdf": "Dr Lee Orthopedics",
    "scan_0003_city_imaging.pdf": "City Imaging",
    "scan_0004_mercy_hospital.pdf": "Mercy Hospital",
    "scan_0005_dr_lee_ortho.pdf": "Dr Lee Orthopedics",
    "scan_0006_mercy_hospital.pdf": "Mercy Hospital",
}
"""The loose scans of the records case, and the provider folder each belongs in."""

SORT_RECORDS = r"""
import os, re
PROVIDERS = {
    "mercy_hospital": "Mercy Hospital",
    "dr_lee_ortho": "Dr Lee Orthopedics",
    "city_imaging": "City Imaging",
}
for name in sorted(os.listdir(".")):
    match = re.fullmatch(r"scan_\d{4}_(\w+?)\.pdf", name)
    if match is None:
        continue
    folder = os.path.join("Medical Records", PROVIDERS[match.group(1)])
    os.makedirs(folder, exist_ok=True)
    os.rename(name, os.path.join(folder, name))
    print(f"{name} -> {folder}/")
"""

TRY_WRITES = r"""
import errno, json, sys
marker = sys.argv[1]
out = {}
for target in sys.argv[2:]:
    try:
        with open(target, "w") as handle:
            handle.write(marker)
        out[target] = "written"
    except OSError as exc:
        out[target] = errno.errorcode[exc.errno]
with open("inside.txt", "w") as handle:
    handle.write("written inside the scope\n")
print(json.dumps(out))
"""

TRY_READS = r"""
import errno, json, os, sys
out = {}
for target in sys.argv[1:]:
    try:
        if os.path.isdir(target):
            found = []
            for folder, _, files in os.walk(target, onerror=lambda exc: None):
                found += [os.path.join(folder, name) for name in files]
            out[target] = {"files": found}
        else:
            with open(target, "rb") as handle:
                out[target] = {"read": len(handle.read())}
    except OSError as exc:
        out[target] = {"error": errno.errorcode[exc.errno]}
print(json.dumps(out))
"""

SHOW_ENVIRONMENT = r"""
import json, os
seen = {"environ": dict(os.environ), "processes": {}, "cmdlines": {}}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for name, key in (("environ", "processes"), ("cmdline", "cmdlines")):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as handle:
                    seen[key][pid] = handle.read().decode("utf-8", "replace")
            except OSError:
                pass
print(json.dumps(seen))
"""
"""The code's environment, and every process's environment and command line it can read."""

CONNECT = r"""
import errno, socket, sys
with socket.socket() as sock:
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", int(sys.argv[1])))
        print("connected")
    except OSError as exc:
        print("refused:", errno.errorcode.get(exc.errno or 0, str(exc)))
"""

FORK_BOMB = r"""
import errno, os, sys
# Every process forks and its children fork again; nobody exits until the first process is
# done, so the population only grows until a limit stops it.
hold_r, hold_w = os.pipe()
first = os.getpid()

def wait_for_the_end():
    global hold_w
    if hold_w is not None:
        os.close(hold_w)
        hold_w = None
    os.read(hold_r, 1)
    os._exit(0)

for _ in range(12):
    try:
        if os.fork() == 0:
            if hold_w is not None:
                os.close(hold_w)
                hold_w = None
    except OSError:
        break
if os.getpid() != first:
    wait_for_the_end()
for made in range(20000):
    try:
        pid = os.fork()
    except OSError as exc:
        print("fork failed:", errno.errorcode[exc.errno], flush=True)
        sys.exit(3)
    if pid == 0:
        wait_for_the_end()
print("forked without limit", flush=True)
"""

MEMORY_BOMB = r"""
chunks = []
for _ in range(4096):
    chunks.append(bytearray(b"\x01") * (16 << 20))
    print(len(chunks) * 16, "MiB", flush=True)
print("allocated without limit", flush=True)
"""

WRITE_BEYOND = r"""
import errno, sys
written = 0
try:
    with open("big.bin", "wb") as handle:
        while written < 5_000_000:
            handle.write(b"\x02" * 65536)
            written += 65536
            handle.flush()
except OSError as exc:
    print("write failed:", errno.errorcode[exc.errno], "after", written, flush=True)
    sys.exit(1)
print("wrote", written, flush=True)
"""

SWAP_FOR_LINKS = r"""
import os
with open("report.txt", "w") as handle:
    handle.write("a draft report\n")
os.symlink("/etc/passwd", "report.tmp")
os.replace("report.tmp", "report.txt")
os.remove("notes.txt")
os.symlink("/etc/passwd", "notes.txt")
with open("kept.txt", "w") as handle:
    handle.write("kept\n")
"""


SYSCALLS = r"""
import ctypes, errno, json, os, platform, socket
libc = ctypes.CDLL(None, use_errno=True)
NUMBERS = {"x86_64": {"io_uring_setup": 425, "userfaultfd": 323},
           "aarch64": {"io_uring_setup": 425, "userfaultfd": 282}}[platform.machine()]
out = {}
params = ctypes.create_string_buffer(120)
for name, args in (("io_uring_setup", (4, params)), ("userfaultfd", (0,))):
    result = libc.syscall(NUMBERS[name], *args)
    out[name] = "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]
try:
    socket.socket(40, socket.SOCK_STREAM).close()  # AF_VSOCK
    out["vsock"] = "ok"
except OSError as exc:
    out["vsock"] = errno.errorcode[exc.errno]
socket.socket(socket.AF_UNIX).close()
out["unix"] = "ok"
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
out["fork"] = "ok"
print(json.dumps(out))
"""

FILL = r"""
import errno, json, sys
out = {}
for target in sys.argv[1:]:
    written = 0
    try:
        with open(target, "wb") as handle:
            while written < 64 << 20:
                handle.write(b"\x03" * (1 << 20))
                handle.flush()
                written += 1 << 20
        out[target] = {"written": written, "error": None}
    except OSError as exc:
        out[target] = {"written": written, "error": errno.errorcode[exc.errno]}
print(json.dumps(out))
"""


def _processes_with(marker: str) -> list[int]:
    """Host processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return found


def _runs_the_code(pid: int) -> bool:
    """True for the code's own process (``python3 -c ...``), not Airlock's launcher or the
    backend's setup, whose command lines hold the command too."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return os.path.basename(argv0) == b"python3"


def _sandbox_kernels(sandbox: str) -> list[int]:
    """gVisor runs the code inside its own kernel, the host process ``runsc-sandbox`` (its
    file proxy, ``runsc-gofer``, stays root by design and runs no code of the run's)."""
    if sandbox != "gvisor":
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if argv[0] == b"runsc-sandbox":
                    found.append(int(entry))
    return found


def _host_ids(pid: int) -> list[int]:
    """Every uid and gid (real, effective, saved, filesystem) of a host process."""
    ids: list[int] = []
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("Uid:", "Gid:")):
            ids += [int(value) for value in line.split()[1:]]
    return ids


def operations(plan: PlanRecord, ws: Workspace) -> list[dict[str, Any]]:
    """The plan's operations, a write's body shown as its text (submit keeps every body in the
    content store, and the plan names it by SHA-256 and size)."""
    shown = []
    for op in plan.plan.operations:
        data = op.model_dump(mode="json", exclude_none=True)
        if isinstance(op, Write) and op.stored is not None:
            body = b"".join(ws.content.read(op.stored.sha256))
            del data["sha256"], data["size"]
            try:
                data["text"] = body.decode()
            except UnicodeDecodeError:
                data["base64"] = base64.b64encode(body).decode()
        shown.append(data)
    return shown


def payload(ws: Workspace, result: RunResult) -> dict[str, Any]:
    """The audit log's record of ``result`` (exactly one "ran" event per run)."""
    events = [
        event
        for event in ws.audit_events()
        if event["kind"] == "ran" and event["payload"]["run_id"] == result.run_id
    ]
    assert len(events) == 1
    data: dict[str, Any] = events[0]["payload"]
    assert events[0]["plan_id"] == (result.plan.id if result.plan else None)
    return data


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def apply(ws: Workspace, plan: PlanRecord) -> None:
    """Approve ``plan`` if the policy asks for a person, then apply it."""
    assert plan.status == "validated"
    assert plan.validation is not None and plan.validation.valid
    if plan.validation.needs_approval:
        ws.approve(plan.id, by=person("reviewer"))
    assert ws.apply(plan.id, by=person("reviewer")).success


def applies_and_rolls_back(ws: Workspace, plan: PlanRecord) -> None:
    """Apply and roll back ``plan``: the tree changes, then ends exactly as it began."""
    before = snapshot(ws.root)
    apply(ws, plan)
    assert snapshot(ws.root) != before
    assert ws.rollback(plan.id, by=person("reviewer")).success
    assert snapshot(ws.root) == before


class Runner:
    """``runs.run`` bound to one workspace and backend, remembering every run it made."""

    def __init__(self, ws: Workspace, sandbox: str) -> None:
        self.ws = ws
        self.sandbox = sandbox
        self.results: list[RunResult] = []

    def __call__(
        self,
        command: Sequence[str],
        *,
        scope: str = CASE,
        network: bool = False,
        limits: Limits = QUICK,
    ) -> RunResult:
        result = runs.run(
            self.ws, scope, list(command), sandbox=self.sandbox, network=network, limits=limits
        )
        self.results.append(result)
        assert result.sandbox == self.sandbox
        return result

    def python(self, code: str, *args: str, **kwargs: Any) -> RunResult:
        return self(["python3", "-c", code, *args], **kwargs)

    def shell(self, script: str, **kwargs: Any) -> RunResult:
        return self(["sh", "-c", script], **kwargs)


class SandboxConformance:
    """The sandbox contract, as tests. Subclass it and provide the ``sandbox`` fixture; set
    ``capture_mode`` to "copy" (and force it) to run the contract over the copy fallback."""

    capture_mode = "overlay"

    @pytest.fixture
    def sandbox(self) -> str:
        raise NotImplementedError("the backend's test class names the backend to test")

    @pytest.fixture
    def run(self, ws: Workspace, sandbox: str) -> Runner:
        root = ws.root
        (root / OTHER_CASE).mkdir(parents=True)
        (root / OTHER_CASE / "brief.txt").write_text("the other case's brief\n")
        tool = root / "Tools" / "hello-tool"
        tool.write_text('#!/bin/sh\necho "hello-tool ran with $1 in $(pwd)"\n')
        tool.chmod(0o755)
        return Runner(ws, sandbox)

    @pytest.fixture(autouse=True)
    def _leaves_nothing_behind(self, ws: Workspace, run: Runner) -> Iterator[None]:
        yield
        scratch = runs.scratch_root()
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            mounts = [line for line in handle if str(scratch) in line]
        ours = [line for line in mounts if any(r.run_id in line for r in run.results)]
        assert ours == []
        for result in run.results:
            assert not (scratch / result.run_id).exists(), f"{result.run_id} left its scratch"
            assert _processes_with(result.run_id) == [], "a run left a process behind"
        for result in run.results:
            for group in (
                cgroup.ROOT / "airlock" / result.run_id,
                cgroup.ROOT / "memory" / "airlock" / result.run_id,
                cgroup.ROOT / "pids" / "airlock" / result.run_id,
            ):
                assert not group.exists(), f"{group} was left behind"

    # --- capture: the headline ----------------------------------------------------------------

    def test_sorting_medical_records_is_a_plan_of_mkdirs_and_moves(
        self, ws: Workspace, run: Runner
    ) -> None:
        case = ws.root / RECORDS_CASE
        (case / "correspondence").mkdir(parents=True)
        (case / "correspondence" / "letter.txt").write_text("Dear counsel,\n")
        (case / "index.txt").write_text("scans received 2024-03-01\n")
        for name in SCANS:  # all the same size, each with its own bytes
            body = hashlib.sha256(name.encode()).digest() * 256
            (case / name).write_bytes(b"%PDF-1.4\n" + body + b"\n%%EOF\n")
        originals = {name: (case / name).read_bytes() for name in SCANS}
        before = snapshot(ws.root)

        result = run.python(SORT_RECORDS, scope=RECORDS_CASE)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.capture == self.capture_mode
        assert result.outcome.stdout.decode().count(" -> Medical Records/") == len(SCANS)
        assert snapshot(ws.root) == before, "the run changed the real files"
        assert result.plan is not None and result.skipped == []
        providers = sorted(set(SCANS.values()))
        assert operations(result.plan, ws) == [
            {"op": "mkdir", "path": "Medical Records"},
            *({"op": "mkdir", "path": f"Medical Records/{p}"} for p in providers),
            *(
                {
                    "op": "move",
                    "source": name,
                    "destination": f"Medical Records/{provider}/{name}",
                    "overwrite": False,
                }
                for provider, name in sorted((p, n) for n, p in SCANS.items())
            ),
        ]
        ran = payload(ws, result)
        assert ran["command"] == ["python3", "-c", SORT_RECORDS]
        assert ran["exit_code"] == 0 and ran["capture"] == self.capture_mode

        plan = result.plan
        apply(ws, plan)
        for name, provider in SCANS.items():
            assert not (case / name).exists()
            assert (case / "Medical Records" / provider / name).read_bytes() == originals[name]
        assert (case / "index.txt").read_text() == "scans received 2024-03-01\n"
        assert (case / "correspondence" / "letter.txt").read_text() == "Dear counsel,\n"

        assert ws.rollback(plan.id, by=person("reviewer")).success
        assert snapshot(ws.root) == before

    def test_the_scope_is_writable_at_both_of_its_paths(self, ws: Workspace, run: Runner) -> None:
        result = run.shell(
            'pwd; echo one > /scope/one.txt; echo two > "/workspace/$AIRLOCK_SCOPE/two.txt"'
        )

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.outcome.stdout == b"/scope\n"
        assert result.plan is not None
        assert operations(result.plan, ws) == [
            {"op": "write", "path": "one.txt", "text": "one\n", "overwrite": False},
            {"op": "write", "path": "two.txt", "text": "two\n", "overwrite": False},
        ]
        applies_and_rolls_back(ws, result.plan)

    def test_a_run_that_changes_nothing_returns_its_output_and_no_plan(
        self, ws: Workspace, run: Runner
    ) -> None:
        plans_before = ws.list_plans()
        command = ["python3", "-c", "print(open('notes.txt').read(), end='')"]

        result = run(command)

        assert result.outcome.exit_code == 0
        assert result.outcome.stdout == b"first notes\n"
        assert result.plan is None and result.skipped == []
        assert ws.list_plans() == plans_before
        ran = payload(ws, result)
        assert ran["command"] == command
        assert ran["exit_code"] == 0
        assert ran["stdout"] == "first notes\n"
        assert ran["sandbox"] == run.sandbox

    def test_a_failing_command_reports_its_exit_code_and_both_streams(
        self, ws: Workspace, run: Runner
    ) -> None:
        result = run.shell("echo to-out; echo to-err >&2; exit 7")

        assert result.outcome.exit_code == 7
        assert result.outcome.stdout == b"to-out\n"
        assert result.outcome.stderr == b"to-err\n"
        assert result.plan is None
        assert not result.outcome.timed_out and not result.outcome.output_limited
        ran = payload(ws, result)
        assert (ran["exit_code"], ran["stdout"], ran["stderr"]) == (7, "to-out\n", "to-err\n")

    # --- what the code can see ----------------------------------------------------------------

    def test_tools_are_readable_and_runnable(self, run: Runner) -> None:
        result = run.shell(
            "hello-tool first && /workspace/Tools/hello-tool second"
            " && cat /workspace/Tools/hello-tool"
        )

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.outcome.stdout.decode().splitlines() == [
            "hello-tool ran with first in /scope",
            "hello-tool ran with second in /scope",
            "#!/bin/sh",
            'echo "hello-tool ran with $1 in $(pwd)"',
        ]
        assert result.plan is None

    def test_another_clients_case_is_invisible_the_ethical_wall(
        self, ws: Workspace, run: Runner
    ) -> None:
        # H2: a run over Case-A could read projects/OtherCase (even a 0600 file) and copy it
        # into Case-A, where capture made it an ordinary write the agent could apply.
        secret = ws.root / OTHER_CASE / "secret.txt"
        secret.write_text("privileged and confidential\n")
        secret.chmod(0o600)
        other = f"/workspace/{OTHER_CASE}"
        script = f"""
import errno, json, os, shutil
out = {{"workspace": sorted(os.listdir("/workspace")), "projects": sorted(os.listdir("/workspace/projects"))}}
for name in ("brief.txt", "secret.txt"):
    try:
        shutil.copy("{other}/" + name, "/scope/" + name)
        out[name] = "copied"
    except OSError as exc:
        out[name] = errno.errorcode[exc.errno]
print(json.dumps(out))
"""
        before = snapshot(ws.root)

        result = run.python(script)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        seen = json.loads(result.outcome.stdout)
        assert seen == {
            "workspace": ["Tools", "projects"],
            "projects": ["Case-A"],
            "brief.txt": "ENOENT",
            "secret.txt": "ENOENT",
        }
        assert result.plan is None
        assert snapshot(ws.root) == before
        assert payload(ws, result)["reads"] == ["Tools"], "the audit log says what it could read"

    def test_a_case_the_policy_grants_is_readable_but_read_only(
        self, ws: Workspace, run: Runner
    ) -> None:
        ws.policy = dataclasses.replace(ws.policy, run_grants=((CASE, (OTHER_CASE,)),))
        before = snapshot(ws.root)
        other = f"/workspace/{OTHER_CASE}"
        script = f"""
import errno, json, os
out = {{"read": open("{other}/brief.txt").read()}}
def attempt(name, action):
    try:
        action()
        out[name] = "done"
    except OSError as exc:
        out[name] = errno.errorcode[exc.errno]
attempt("append", lambda: open("{other}/brief.txt", "a").write("more"))
attempt("create", lambda: open("{other}/new.txt", "w").write("new"))
attempt("rename", lambda: os.rename("{other}/brief.txt", "{other}/moved.txt"))
attempt("unlink", lambda: os.unlink("{other}/brief.txt"))
attempt("mkdir", lambda: os.mkdir("{other}/folder"))
attempt("move-out", lambda: os.rename("{other}/brief.txt", "/scope/stolen.txt"))
print(json.dumps(out))
"""
        result = run.python(script)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        seen = json.loads(result.outcome.stdout)
        assert seen.pop("read") == "the other case's brief\n"
        assert all(code in ("EROFS", "EACCES", "EPERM", "EXDEV") for code in seen.values()), seen
        assert set(seen) == {"append", "create", "rename", "unlink", "mkdir", "move-out"}
        assert result.plan is None
        assert snapshot(ws.root) == before

    # --- who the code is on the host ----------------------------------------------------------

    def test_the_code_is_neither_host_root_nor_the_workspace_owner(
        self, ws: Workspace, run: Runner
    ) -> None:
        # C1: bwrap started by root ran the code as host uid 0 (uid_map "1000 0 1"): it read
        # root's 0600 files and wrote /proc/sys. Checked from outside, on the host's own view.
        marker = f"airlock-whoami-{secrets.token_hex(6)}"
        owner = (ws.root / CASE).stat().st_uid
        seen: dict[int, list[int]] = {}
        done = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + 20
            while not done.is_set() and time.monotonic() < deadline:
                inside = [pid for pid in _processes_with(marker) if _runs_the_code(pid)]
                for pid in inside + _sandbox_kernels(run.sandbox):
                    with contextlib.suppress(OSError):
                        seen[pid] = _host_ids(pid)
                done.wait(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            result = run.python(
                "import sys, time; print(open('/proc/self/status').read()); time.sleep(1.5)",
                marker,
            )
        finally:
            done.set()
            watcher.join()

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert seen, "no process of the run was found on the host"
        for pid, ids in seen.items():
            assert 0 not in ids, f"process {pid} runs as host root: {ids}"
            assert owner not in ids, f"process {pid} runs as the workspace's owner: {ids}"
        recorded = payload(ws, result)["host_ids"]
        assert 0 not in recorded and owner not in recorded

    def test_a_strict_umask_of_airlock_changes_nothing_for_the_code(self, run: Runner) -> None:
        # systemd's UMask=0027 made the run's scratch folder and /etc/passwd unreadable to the
        # sandbox's ids, which are "others" on the host.
        old = os.umask(0o077)
        try:
            result = run.python("import pwd, os; print(pwd.getpwuid(os.getuid()).pw_name)")
        finally:
            os.umask(old)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.outcome.stdout == b"agent\n"

    def test_no_process_the_code_sees_names_a_host_path(self, ws: Workspace, run: Runner) -> None:
        # pid 1 inside bwrap is bwrap itself, whose command line named the workspace and the
        # run's scratch folder.
        result = run.python(SHOW_ENVIRONMENT)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        seen = json.loads(result.outcome.stdout)["cmdlines"]
        assert "1" in seen, "pid 1 is visible to the code"
        for pid, cmdline in seen.items():
            for host in (str(ws.root), str(runs.scratch_root()), str(ws.state_dir)):
                assert host not in cmdline, f"pid {pid} shows {host}: {cmdline!r}"

    def test_the_mount_table_names_no_scratch_or_state_path(
        self, ws: Workspace, run: Runner
    ) -> None:
        # /etc/passwd was bound from the run's scratch folder, whose host path showed in
        # /proc/self/mountinfo. (A read area's own path in its filesystem still shows there:
        # docs/runs.md, known limits.)
        result = run(["cat", "/proc/self/mountinfo"])

        assert result.outcome.exit_code == 0, result.outcome.stderr
        table = result.outcome.stdout.decode()
        assert "/etc/passwd" in table or run.sandbox == "gvisor"
        for host in (str(runs.scratch_root()), str(ws.state_dir)):
            assert host not in table, f"{host} shows in the mount table:\n{table}"

    def test_no_host_knob_is_writable(self, run: Runner) -> None:
        # Each is written its own current value: harmless if the write were accepted.
        knobs = ["/proc/sys/kernel/printk_ratelimit", "/proc/sys/kernel/core_pattern"]
        before = {knob: Path(knob).read_bytes() for knob in knobs}
        script = r"""
import errno, json, sys
out = {}
for knob in sys.argv[1:]:
    try:
        with open(knob, "rb") as handle:
            value = handle.read()
        with open(knob, "wb") as handle:
            handle.write(value)
        out[knob] = "written"
    except OSError as exc:
        out[knob] = errno.errorcode[exc.errno]
try:
    with open("/proc/sysrq-trigger", "w") as handle:
        out["sysrq"] = "opened"
except OSError as exc:
    out["sysrq"] = errno.errorcode[exc.errno]
print(json.dumps(out))
"""
        result = run.python(script, *knobs)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        outcome = json.loads(result.outcome.stdout)
        for name, code in outcome.items():
            assert code in ("EROFS", "EACCES", "EPERM", "ENOENT"), (name, code)
        assert {knob: Path(knob).read_bytes() for knob in knobs} == before

    def test_system_calls_the_code_has_no_use_for_are_refused(self, run: Runner) -> None:
        # M6: io_uring, userfaultfd and vsock sockets reached the host kernel.
        result = run.python(SYSCALLS)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        outcome = json.loads(result.outcome.stdout)
        refused = ("EPERM", "ENOSYS", "EACCES", "EAFNOSUPPORT", "EINVAL")
        for name in ("io_uring_setup", "userfaultfd", "vsock"):
            assert outcome[name] in refused, (name, outcome[name])
        assert outcome["unix"] == "ok" and outcome["fork"] == "ok"

    def test_dev_and_dev_shm_are_bounded(self, ws: Workspace, run: Runner) -> None:
        # M3: /dev and /dev/shm were unbounded tmpfs: 64 MiB past a 16 MiB write limit.
        limits = Limits(timeout=30, write=4 << 20)

        result = run.python(FILL, "/dev/shm/fill", "/dev/fill-here", limits=limits)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        outcome = json.loads(result.outcome.stdout)
        shm = outcome["/dev/shm/fill"]
        assert shm["error"] in ("ENOSPC", "EFBIG", "EDQUOT"), shm
        assert shm["written"] <= limits.write + (1 << 20)
        assert outcome["/dev/fill-here"]["written"] == 0, outcome
        assert result.plan is None

    def test_forged_overlay_opacity_deletes_nothing(self, ws: Workspace, run: Runner) -> None:
        # M2: the code set user.overlay.opaque on a folder; capture trusted it and the plan
        # deleted every file of that folder the run never touched.
        docs = ws.root / CASE / "docs"
        docs.mkdir()
        for name in ("a.txt", "b.txt"):
            (docs / name).write_text(f"{name}\n")
        script = r"""
import errno, os
for name in ("user.overlay.opaque", "trusted.overlay.opaque", "user.fuseoverlayfs.opaque"):
    try:
        os.setxattr("docs", name, b"y")
        print(name, "set")
    except OSError as exc:
        print(name, errno.errorcode[exc.errno])
with open("docs/new.txt", "w") as handle:
    handle.write("new\n")
"""
        result = run.python(script)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.plan is not None
        assert operations(result.plan, ws) == [
            {"op": "write", "path": "docs/new.txt", "text": "new\n", "overwrite": False}
        ]

    def test_a_device_node_in_the_scope_is_no_door(self, ws: Workspace, run: Runner) -> None:
        # A device file in a case (only root can make one) must not reach the device: the view
        # and the stage are mounted nodev. /dev/zero's numbers stand in for a disk's.
        if os.geteuid() != 0:
            pytest.skip("only root can make a device node")
        device = ws.root / CASE / "disk"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        script = r"""
import errno
try:
    with open("disk", "rb") as handle:
        print("read", len(handle.read(16)))
except OSError as exc:
    print("refused:", errno.errorcode[exc.errno])
"""
        result = run.python(script)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.outcome.stdout.startswith(b"refused:"), result.outcome.stdout

    def test_a_unix_socket_in_the_scope_leads_nowhere(self, ws: Workspace, run: Runner) -> None:
        # A host service listening on a socket file inside the case was reachable without
        # --network through the bind mount.
        path = ws.root / CASE / "service.sock"
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(path))
            listener.listen(4)
            script = r"""
import errno, socket
with socket.socket(socket.AF_UNIX) as sock:
    sock.settimeout(5)
    try:
        sock.connect("service.sock")
        print("connected")
    except OSError as exc:
        print("refused:", errno.errorcode.get(exc.errno or 0, str(exc)))
"""
            result = run.python(script)

            assert result.outcome.exit_code == 0, result.outcome.stderr
            assert result.outcome.stdout.startswith(b"refused:"), result.outcome.stdout
            assert select.select([listener], [], [], 0)[0] == [], "the host saw a connection"

    # --- escapes ------------------------------------------------------------------------------

    def test_writes_outside_the_scope_are_contained(self, ws: Workspace, run: Runner) -> None:
        marker = f"escaped-{secrets.token_hex(8)}"
        name = f"airlock-escape-{secrets.token_hex(4)}"
        # Everything backed by the host's files must refuse the write.
        host_backed = [
            f"/workspace/{OTHER_CASE}/x",
            f"/workspace/{CASE}/../OtherCase/y",
            "/workspace/Tools/x",
            "/workspace/x",
            "/workspace/.airlock/x",
            f"/usr/{name}",
        ]
        # The sandbox's own /tmp (and, in some backends, its own root and /etc) may take the
        # write, but it lands in the sandbox's memory: never on the host, never in the plan.
        private = [f"/tmp/{name}", f"/etc/{name}", f"/{name}"]
        before = snapshot(ws.root)

        result = run.python(TRY_WRITES, marker, *host_backed, *private)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        outcome = json.loads(result.outcome.stdout)
        for target in host_backed:
            # Another case is not there at all (ENOENT); the rest is read-only.
            refused = ("EROFS", "EACCES", "EPERM", "ENOENT")
            assert outcome[target] in refused, (target, outcome[target])
        assert outcome[f"/tmp/{name}"] == "written", "the sandbox has a private, writable /tmp"
        assert snapshot(ws.root) == before
        for target in private:
            assert not os.path.lexists(target), f"{target} reached the host"
        assert result.plan is not None
        assert operations(result.plan, ws) == [
            {
                "op": "write",
                "path": "inside.txt",
                "text": "written inside the scope\n",
                "overwrite": False,
            }
        ]
        applies_and_rolls_back(ws, result.plan)

    def test_airlock_state_tokens_and_host_secrets_are_not_readable(
        self, ws: Workspace, run: Runner
    ) -> None:
        create_token(ws, "an-agent", Role.AGENT)
        state = ws.state_dir
        assert (state / "airlock.db").is_file()
        host_home = Path.home()
        targets = [
            "/workspace/.airlock/airlock.db",
            "/workspace/.airlock",
            "/root",
            "/home",
            str(host_home),
            "/etc/shadow",
            "/etc/gshadow",
            str(state / "airlock.db"),
            str(ws.root),
        ]

        result = run.python(TRY_READS, *targets)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        seen = json.loads(result.outcome.stdout)
        for target in targets:
            found = seen[target]
            assert "read" not in found, f"{target} was readable"
            assert found.get("files", []) == [], f"{target} shows {found['files']}"
            if "error" in found:
                assert found["error"] in ("ENOENT", "EACCES", "EPERM"), (target, found)
        assert result.plan is None

    def test_the_environment_holds_no_secrets(
        self, run: Runner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        secret = f"alk_{secrets.token_hex(8)}_{secrets.token_hex(16)}"
        monkeypatch.setenv("AIRLOCK_TOKEN", secret)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret[::-1])

        result = run.python(SHOW_ENVIRONMENT)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert secret not in result.outcome.stdout.decode()
        assert secret[::-1] not in result.outcome.stdout.decode()
        seen = json.loads(result.outcome.stdout)
        assert "AIRLOCK_TOKEN" not in seen["environ"]
        assert "AWS_SECRET_ACCESS_KEY" not in seen["environ"]
        assert seen["environ"]["AIRLOCK_SCOPE"] == CASE
        # bubblewrap's --chdir also sets PWD; nothing else may reach the code.
        assert seen["environ"].get("PWD", "/scope") == "/scope"
        assert set(seen["environ"]) <= {"PATH", "HOME", "LANG", "TMPDIR", "AIRLOCK_SCOPE", "PWD"}
        assert seen["processes"], "the code can see its own processes"

    def test_no_network_without_network(self, run: Runner) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            port = listener.getsockname()[1]

            result = run.python(CONNECT, str(port))

            assert result.outcome.exit_code == 0, result.outcome.stderr
            assert result.outcome.stdout.startswith(b"refused:"), result.outcome.stdout
            assert select.select([listener], [], [], 0)[0] == [], "the host saw a connection"

    def test_network_when_asked_for(self, run: Runner) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            listener.settimeout(10)
            port = listener.getsockname()[1]

            result = run.python(CONNECT, str(port), network=True)

            assert result.outcome.exit_code == 0, result.outcome.stderr
            assert result.outcome.stdout == b"connected\n"
            connection, _ = listener.accept()
            connection.close()

    def test_a_fork_bomb_is_contained(self, run: Runner) -> None:
        started = time.monotonic()

        result = run.python(FORK_BOMB, limits=BOMB)

        out = result.outcome
        assert not out.timed_out, "the fork bomb ran until its timeout: no process limit"
        assert time.monotonic() - started < BOMB.timeout
        assert out.exit_code == 3, (out.exit_code, out.stdout, out.stderr)
        assert out.stdout == b"fork failed: EAGAIN\n"
        assert result.plan is None
        assert subprocess.run(["true"], check=False).returncode == 0, "the host cannot fork"

    def test_a_memory_bomb_is_contained(self, run: Runner) -> None:
        result = run.python(MEMORY_BOMB, limits=BOMB)

        out = result.outcome
        assert not out.timed_out
        assert out.exit_code not in (0, None), (out.exit_code, out.stderr)
        assert b"allocated without limit" not in out.stdout
        assert "memory" in out.limits_hit or out.exit_code == 137 or b"MemoryError" in out.stderr
        reached = [int(line.split()[0]) for line in out.stdout.decode().splitlines() if line]
        assert reached and max(reached) * (1 << 20) <= BOMB.memory
        assert result.plan is None

    def test_an_output_flood_is_stopped_and_keeps_nothing(self, ws: Workspace, run: Runner) -> None:
        limits = Limits(timeout=20, output=64 << 10)
        before = snapshot(ws.root)

        result = run.shell("echo flooded > flood.txt; yes", limits=limits)

        out = result.outcome
        assert out.output_limited and not out.timed_out
        assert out.exit_code is None
        assert 0 < len(out.stdout) <= limits.output
        assert set(out.stdout.decode().splitlines()[:-1]) == {"y"}
        assert result.plan is None
        assert result.summary.startswith("stopped: the run printed more than its output limit")
        assert snapshot(ws.root) == before
        assert payload(ws, result)["output_limited"] is True

    def test_a_run_past_its_timeout_is_stopped_quickly_and_keeps_nothing(
        self, ws: Workspace, run: Runner
    ) -> None:
        before = snapshot(ws.root)
        started = time.monotonic()

        result = run.shell("echo late > late.txt; sleep 30", limits=Limits(timeout=1))

        elapsed = time.monotonic() - started
        assert result.outcome.timed_out and result.outcome.exit_code is None
        assert elapsed < 10, f"stopping took {elapsed:.1f} s"
        assert result.plan is None
        assert snapshot(ws.root) == before
        assert payload(ws, result)["timed_out"] is True

    def test_a_planted_symlink_is_never_followed(self, ws: Workspace, run: Runner) -> None:
        passwd = Path("/etc/passwd").read_bytes()

        result = run.shell(
            "ln -s /etc x; echo 'pwned::0:0::/:/bin/sh' >> x/passwd; echo append=$?;"
            " ln -s /etc/passwd passwd-link; echo kept > kept.txt"
        )

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.outcome.stdout != b"append=0\n", "the sandbox's /etc/passwd is writable"
        assert result.plan is not None
        assert operations(result.plan, ws) == [
            {"op": "write", "path": "kept.txt", "text": "kept\n", "overwrite": False}
        ]
        assert {item["path"] for item in result.skipped} == {"x", "passwd-link"}
        before = snapshot(ws.root)
        apply(ws, result.plan)
        assert Path("/etc/passwd").read_bytes() == passwd
        assert not os.path.lexists(ws.root / CASE / "x")
        assert not os.path.lexists(ws.root / CASE / "passwd-link")
        assert (ws.root / CASE / "kept.txt").read_text() == "kept\n"
        assert ws.rollback(result.plan.id, by=person("reviewer")).success
        assert snapshot(ws.root) == before

    def test_a_file_swapped_for_a_symlink_is_never_followed(
        self, ws: Workspace, run: Runner
    ) -> None:
        passwd = Path("/etc/passwd").read_bytes()
        notes = (ws.root / CASE / "notes.txt").read_bytes()

        result = run.python(SWAP_FOR_LINKS)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.plan is not None
        assert operations(result.plan, ws) == [
            {"op": "write", "path": "kept.txt", "text": "kept\n", "overwrite": False}
        ]
        assert {item["path"] for item in result.skipped} == {"report.txt", "notes.txt"}
        apply(ws, result.plan)
        assert Path("/etc/passwd").read_bytes() == passwd
        assert (ws.root / CASE / "notes.txt").read_bytes() == notes
        assert not (ws.root / CASE / "notes.txt").is_symlink()
        assert not os.path.lexists(ws.root / CASE / "report.txt")
        assert (ws.root / CASE / "kept.txt").read_text() == "kept\n"

    # --- limits on what the code may write ----------------------------------------------------

    def test_a_sparse_file_past_the_write_limit_is_refused_unread(
        self, ws: Workspace, run: Runner
    ) -> None:
        # H1: `truncate -s 512M` under --write 16M used no blocks, so the limit did not stop it,
        # and capture read it whole into memory (100 GiB: MemoryError, no plan, no audit).
        limits = Limits(timeout=60, write=16 << 20)
        script = (
            "open('huge.bin', 'wb').truncate(100 << 30)\nopen('small.txt', 'w').write('kept\\n')\n"
        )
        started = time.monotonic()

        result = run.python(script, limits=limits)

        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert time.monotonic() - started < 30, "the sparse file was read"
        assert "write" in result.outcome.limits_hit
        assert [item["path"] for item in result.skipped] == ["huge.bin"]
        assert result.plan is not None
        assert operations(result.plan, ws) == [
            {"op": "write", "path": "small.txt", "text": "kept\n", "overwrite": False}
        ]
        assert payload(ws, result)["limits_hit"] == result.outcome.limits_hit

    def test_writing_past_the_write_limit_fails_inside(self, ws: Workspace, run: Runner) -> None:
        limits = Limits(timeout=30, write=1_000_000)
        before = snapshot(ws.root)

        result = run.python(WRITE_BEYOND, limits=limits)

        out = result.outcome
        assert out.exit_code == 1, (out.stdout, out.stderr)
        match = re.fullmatch(rb"write failed: ENOSPC after (\d+)\n", out.stdout)
        assert match is not None, out.stdout
        assert int(match.group(1)) <= limits.write
        assert "exit code 1" in result.summary
        assert payload(ws, result)["exit_code"] == 1
        # What the code managed to write before the limit may come back as a plan (the failed
        # exit code is beside it in the audit log); the size limit rounds up to whole pages.
        page = os.sysconf("SC_PAGE_SIZE")
        if result.plan is not None:
            assert [op["path"] for op in operations(result.plan, ws)] == ["big.bin"]
            assert result.plan.validation is not None
            assert result.plan.validation.bytes_written <= -(-limits.write // page) * page
        assert snapshot(ws.root) == before
