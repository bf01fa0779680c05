"""An agent tool's round trip: what Airlock adds to a read, a listing and a write.

Over a case of ``--files`` files (in 10 folders), each figure is the median of ``--repeat``
calls, at two doors:

1. **In process** (:class:`airlock.agents.session.AgentSession`, what the deepagents backend and
   the LangChain tools call): read a file, list a folder, write a new file into the pending
   plan. The write checks the whole pending plan each time (it simulates it), so it is timed
   with 0, 10 and 100 changes already pending.
2. **Over HTTP**, two doors: Airlock's own agent API (``POST /api/v1/agent/{call}`` on a real
   ``airlock serve``, through :class:`airlock.agents.remote.RemoteSession`, what
   ``AirlockBackend.remote`` calls; its write figure includes a discard), and the same read and
   listing as MCP tool calls (``read_text_file``,
   ``list_directory``) on a real ``airlock mcp --http`` process, through the MCP SDK's own
   streamable-HTTP client (one session, reused; the figure includes JSON-RPC encoding, the
   bearer-token check and loopback TCP).

3. **Running code** over the pending plan: ``execute("true")`` with one change pending, beside the
   same run with nothing pending (its baseline here: a sandboxed run over the real scope). With
   something pending the scope is first copied as the pending plan leaves it, so the ratio is
   the price of that copy for this case.

The baseline of the other rows, measured in the same run on the same files: ``Path.read_bytes()`` of the file and
``os.listdir`` + ``os.stat`` of the folder, i.e. the plain filesystem calls with no Airlock, no
checks and no sync. A write's baseline is writing the file and ``fsync`` (what a durable write
costs); the pending write stores its body durably in the content store too.

    python bench/bench_agent_tools.py [--files 1000] [--repeat 50] [--no-http]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from airlock.agents.session import AgentSession
from airlock.permissions import Principal, Role
from airlock.tokens import create_token
from airlock.workspace import Workspace
from bench_service import free_port, stop, wait_healthy

SCOPE = "projects/Case-A"


def median_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def make_case(root: Path, files: int) -> Workspace:
    ws = Workspace.init(root)
    case = root / SCOPE
    for index in range(files):
        folder = case / f"folder-{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc-{index:05d}.txt").write_text(f"document {index}\n" * 20)
    return ws


def in_process(ws: Workspace, repeat: int) -> dict[str, tuple[float, float]]:
    """figure -> (Airlock ms, baseline ms)."""
    session = AgentSession(ws, SCOPE, Principal("bench-agent", Role.AGENT, via="bench"))
    real = ws.root / SCOPE / "folder-3"
    path = f"{session.root}/folder-3/doc-00003.txt"
    out = {
        "read a file": (
            median_ms(lambda: session.read_bytes(path), repeat),
            median_ms(lambda: (real / "doc-00003.txt").read_bytes(), repeat),
        ),
        "list a folder": (
            median_ms(lambda: session.ls(f"{session.root}/folder-3"), repeat),
            median_ms(lambda: [os.stat(real / n) for n in os.listdir(real)], repeat),
        ),
    }
    counter = iter(range(10**9))

    def durable_write() -> None:
        target = real / f"base-{next(counter)}.txt"
        with target.open("wb") as handle:
            handle.write(b"# note\n")
            handle.flush()
            os.fsync(handle.fileno())

    baseline = median_ms(durable_write, repeat)
    for pending in (0, 10, 100):
        session.discard()
        for index in range(pending):
            session.write(f"{session.root}/pending/p-{index}.txt", "x")
        count = iter(range(10**9))

        def write_one(c: Iterator[int] = count) -> None:
            session.write(f"{session.root}/new-{next(c)}.txt", "# note\n")

        out[f"write a file, {pending} pending"] = (
            median_ms(write_one, max(5, repeat // 5)),
            baseline,
        )
    session.discard()
    if shutil.which("bwrap") is not None:
        plain = median_ms(lambda: session.execute("true"), max(3, repeat // 10))
        session.write(f"{session.root}/index.md", "# Index\n")
        over_pending = median_ms(lambda: session.execute("true"), max(3, repeat // 10))
        session.discard()
        out["run `true`, 1 change pending"] = (over_pending, plain)
    return out


async def _mcp_calls(url: str, token: str, root: str, repeat: int) -> dict[str, float]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    path = f"{root}/folder-3/doc-00003.txt"
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        found = {}
        for name, tool, args in (
            ("read a file", "read_text_file", {"path": path}),
            ("list a folder", "list_directory", {"path": f"{root}/folder-3"}),
        ):
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                result = await client.call_tool(tool, args)
                times.append(time.perf_counter() - start)
                assert not result.is_error, result
            found[name] = statistics.median(times) * 1000
        return found


def over_http(ws: Workspace, repeat: int) -> dict[str, float]:
    _id, token = create_token(ws, "bench-agent", Role.AGENT)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airlock",
            "mcp",
            "--workspace",
            str(ws.root),
            "--scope",
            SCOPE,
            "--http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, "AIRLOCK_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        return asyncio.run(
            _mcp_calls(f"http://127.0.0.1:{port}/mcp", token, f"/workspace/{SCOPE}", repeat)
        )
    finally:
        stop(proc)


def over_native_http(ws: Workspace, repeat: int) -> dict[str, float]:
    """The same calls through RemoteSession on a real ``airlock serve`` (POST /api/v1/agent)."""
    from airlock.agents.remote import RemoteSession

    _id, token = create_token(ws, "bench-remote", Role.AGENT)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airlock",
            "serve",
            "--workspace",
            str(ws.root),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(base, proc, time.monotonic() + 30)
        remote = RemoteSession(base, scope=SCOPE, token=token)
        root = f"/workspace/{SCOPE}"
        count = iter(range(10**9))

        def write_one() -> None:
            remote.write(f"{root}/r-{next(count)}.txt", "# note\n")
            remote.discard()

        found = {
            "read a file": median_ms(
                lambda: remote.read_bytes(f"{root}/folder-3/doc-00003.txt"), repeat
            ),
            "list a folder": median_ms(lambda: remote.ls(f"{root}/folder-3"), repeat),
            "write a file, 0 pending": median_ms(write_one, max(5, repeat // 5)),
        }
        remote.close()
        return found
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-http", action="store_true", help="skip the MCP-over-HTTP figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = make_case(Path(tmp) / "ws", args.files)
        local = in_process(ws, args.repeat)
        http = {} if args.no_http else over_http(ws, args.repeat)
        native = {} if args.no_http else over_native_http(ws, args.repeat)
        ws.close()
    print(f"Agent tool round trip, case of {args.files} files; median of {args.repeat} calls")
    print(
        f"{'call':<28}{'baseline ms':>12}{'in-process ms':>15}{'ratio':>8}"
        f"{'API/HTTP ms':>13}{'MCP/HTTP ms':>13}"
    )
    for name, (airlock_ms, base_ms) in local.items():
        over = "".join(
            f"{door[name]:>13.2f}" if name in door else f"{'':>13}" for door in (native, http)
        )
        ratio = airlock_ms / base_ms if base_ms else float("nan")
        print(f"{name:<28}{base_ms:>12.3f}{airlock_ms:>15.2f}{ratio:>8.0f}{over}")


if __name__ == "__main__":
    main()
