"""Real SPARQL servers on 127.0.0.1 for the endpoint tests.

- :func:`oxigraph_server`: Oxigraph's own HTTP server (the ``oxigraph`` package's
  binary), loaded with files, read-only or read-write.
- :class:`FaultyEndpoint`: a small SPARQL protocol server in a thread, answering from a
  pyoxigraph store, that misbehaves on purpose as a plan says (429, 503, a hang past the
  client's timeout, a connection dropped mid-answer, an HTML page, a 404), each request
  taking the next step of the plan; it counts the requests it got.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyoxigraph as ox

from tests.helpers import free_port, stop


def wait_until_serving(process: subprocess.Popen, url: str, seconds: float, interval: float, why: Callable[[], str]) -> None:
    """Poll ``url`` until it answers; a RuntimeError with ``why()`` when the process exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(why()) from None
            time.sleep(interval)


def oxigraph_binary() -> str:
    found = shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph")
    if not Path(found).is_file():
        raise FileNotFoundError("the oxigraph server binary is not installed (pip install oxigraph)")
    return found


@contextlib.contextmanager
def oxigraph_server(folder: Path, files: Sequence[tuple[Path, str | None]] = (), *, writable: bool = False) -> Iterator[str]:
    """Oxigraph serving a store in ``folder`` loaded with ``files`` ((path, named graph or None)); yields its base URL."""
    binary = oxigraph_binary()
    for path, graph in files:
        command = [binary, "load", "--location", str(folder), "--file", str(path)]
        if graph:
            command += ["--graph", graph]
        subprocess.run(command, check=True, capture_output=True)
    port = free_port()
    mode = "serve" if writable else "serve-read-only"
    process = subprocess.Popen([binary, mode, "--location", str(folder), "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, f"{base}/query?query=ASK%7B%7D", 30, 0.1, lambda: f"oxigraph did not start: {process.stderr.read().decode() if process.stderr else ''}")
        yield base
    finally:
        stop(process)


VIRTUOSO_INI = """[Database]
DatabaseFile = {folder}/virtuoso.db
ErrorLogFile = {folder}/virtuoso.log
LockFile = {folder}/virtuoso.lck
TransactionFile = {folder}/virtuoso.trx
xa_persistent_file = {folder}/virtuoso.pxa
FileExtend = 200
MaxCheckpointRemap = 2000
Striping = 0
TempStorage = TempDatabase

[TempDatabase]
DatabaseFile = {folder}/virtuoso-temp.db
TransactionFile = {folder}/virtuoso-temp.trx
MaxCheckpointRemap = 2000
Striping = 0

[Parameters]
ServerPort = 127.0.0.1:{sql_port}
NumberOfBuffers = 10000
MaxDirtyBuffers = 6000
DirsAllowed = ., {folder}, {data}
CheckpointInterval = 60

[HTTPServer]
ServerPort = 127.0.0.1:{http_port}
ServerRoot = {folder}
MaxClientConnections = 4
ServerThreads = 4

[SPARQL]
ResultSetMaxRows = 1000000
MaxQueryExecutionTime = 120
"""


@contextlib.contextmanager
def virtuoso_server(folder: Path, files: Sequence[tuple[Path, str]]) -> Iterator[str]:
    """Debian's Virtuoso (virtuoso-t) with a fresh database in ``folder``, ``files`` loaded into
    their named graphs, SPARQL Update allowed on /sparql; yields the /sparql URL."""
    binary, isql = shutil.which("virtuoso-t"), shutil.which("isql-vt")
    if not binary or not isql:
        raise FileNotFoundError("Virtuoso is not installed (Debian package virtuoso-opensource-7-bin)")
    folder.mkdir(parents=True, exist_ok=True)
    data = sorted({str(path.resolve().parent) for path, _ in files})
    sql_port, http_port = free_port(), free_port()
    ini = folder / "virtuoso.ini"
    ini.write_text(VIRTUOSO_INI.format(folder=folder, sql_port=sql_port, http_port=http_port, data=", ".join(data)))
    process = subprocess.Popen([binary, "-f", "-c", str(ini)], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{http_port}/sparql"
    log = folder / "virtuoso.log"
    try:
        wait_until_serving(process, f"{url}?query=ASK%7B%7D", 60, 0.25, lambda: f"Virtuoso did not start: {log.read_text(errors='replace')[-2000:] if log.exists() else ''}")
        loads = "".join(f"DB.DBA.TTLP_MT(file_to_string_output('{path.resolve()}'), '', '{graph}', 0); " for path, graph in files)
        subprocess.run([isql, f"127.0.0.1:{sql_port}", "dba", "dba", f'exec={loads}checkpoint; GRANT SPARQL_UPDATE TO "SPARQL";'], check=True, capture_output=True, timeout=120)
        yield url
    finally:
        stop(process)


def select(url: str, query: str) -> list[dict]:
    """The bindings of a SELECT query, asked with the standard library (independent of kgalign's client)."""
    import json

    data = urllib.parse.urlencode({"query": query}).encode()
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/sparql-results+json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["results"]["bindings"]


class FaultyEndpoint:
    """A SPARQL query endpoint at ``self.url`` that follows ``plan`` (one step per request), then ``then``;
    with ``max_rows``, every answer is cut to that many rows."""

    def __init__(self, files: Sequence[Path], plan: Sequence[str] = (), then: str = "ok", *, hang_seconds: float = 3.0, credentials: tuple[str, str] | None = None, max_rows: int | None = None) -> None:
        self.store = ox.Store()
        for path in files:
            self.store.bulk_load(path=str(path))
        self.plan = list(plan)
        self.then = then
        self.hang_seconds = hang_seconds
        self.credentials = credentials
        self.max_rows = max_rows
        self.requests = 0
        self.steps: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/sparql"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_step(self) -> str:
        with self._lock:
            self.requests += 1
            step = self.plan.pop(0) if self.plan else self.then
            self.steps.append(step)
            return step

    def answer(self, query: str) -> bytes:
        body = self.store.query(query).serialize(format=ox.QueryResultsFormat.JSON)
        if self.max_rows is None:
            return body
        import json

        # Cut the answer silently, as Virtuoso's ResultSetMaxRows does.
        document = json.loads(body)
        document["results"]["bindings"] = document["results"]["bindings"][: self.max_rows]
        return json.dumps(document).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                self._serve(urllib.parse.urlparse(self.path).query)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self._serve(self.rfile.read(length).decode("utf-8"))

            def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _serve(self, form: str) -> None:
                if endpoint.credentials is not None:
                    expected = "Basic " + base64.b64encode(":".join(endpoint.credentials).encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        self._send(401, b"authentication required\n", "text/plain", {"WWW-Authenticate": 'Basic realm="sparql"'})
                        return
                step = endpoint.next_step()
                query = urllib.parse.parse_qs(form).get("query", [""])[0]
                if step == "429":
                    self._send(429, b"slow down\n", "text/plain", {"Retry-After": "0"})
                elif step == "503":
                    self._send(503, b"busy\n", "text/plain")
                elif step == "404":
                    self._send(404, b"no such endpoint\n", "text/plain")
                elif step == "html":
                    self._send(200, b"<html><body>Welcome to our portal</body></html>", "text/html")
                elif step == "hang":
                    time.sleep(endpoint.hang_seconds)
                    with contextlib.suppress(OSError):
                        self._send(200, endpoint.answer(query), "application/sparql-results+json")
                elif step == "drop":
                    body = endpoint.answer(query)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/sparql-results+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                else:
                    try:
                        body = endpoint.answer(query)
                    except (SyntaxError, OSError, ValueError) as exc:
                        self._send(400, f"query error: {exc}\n".encode(), "text/plain")
                        return
                    self._send(200, body, "application/sparql-results+json")

        return Handler
