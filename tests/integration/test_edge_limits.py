"""The edge under hostile input (issue 8): `occipy serve` as a subprocess, its memory and CPU read from /proc.

Each test sends what was measured to hurt the server before the edge existed (a 200 MB header
section: 462 MB peak RSS and ~100 s of CPU; short, unterminated and trickled bodies; slowloris
connections; more connections than it should hold) and asserts the answer and a bound: status,
time, peak RSS growth, CPU time, and that the connection is let go.

The helpers at the top (`EdgeServer`, `start_edge_server`, `exchange`) are shared with
test_edge_requests.py and test_tls_x509.py.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


@dataclass
class EdgeServer:
    """`occipy serve` in a subprocess; its stderr (the log) goes to a file."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def proc_status(self, field: str) -> int:
        """A field of /proc/<pid>/status in kB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def peak_rss_mib(self) -> float:
        return self.proc_status("VmHWM") / 1024

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log().splitlines()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_edge_server(data_dir: Path, *flags: str, scheme: str = "http",
                      verify: ssl.SSLContext | bool = True, env: dict[str, str] | None = None) -> EdgeServer:
    """`occipy serve` with these flags on a free port; waits until /-/ answers (or raises with its log)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir / "server.log"
    args = [sys.executable, "-m", "occipy", "serve", "--port", str(port), "--data-dir", str(data_dir),
            "--driver-opt", "delay=0", *flags]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log_file,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
    server = EdgeServer(url=f"{scheme}://127.0.0.1:{port}", port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"occipy serve exited {process.returncode}: {server.log()}")
        try:
            if httpx.get(server.url + "/-/", timeout=2, verify=verify).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"occipy serve did not come up: {server.log()}")


def read_response(sock: socket.socket, timeout: float) -> tuple[bytes, float, bool]:
    """Read until the peer closes, or a whole response (by Content-Length) arrived, or `timeout`.

    Returns the bytes, the seconds until the first byte came (inf if none) and whether the peer
    closed the connection (EOF or reset) within the timeout.
    """
    start = time.monotonic()
    first = float("inf")
    data = b""
    sock.settimeout(0.05)
    while time.monotonic() - start < timeout:
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            if _complete(data):
                return data, first, False
            continue
        except ConnectionResetError:
            return data, first, True
        if not piece:
            return data, first, True
        if first == float("inf"):
            first = time.monotonic() - start
        data += piece
    return data, first, False


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_of(response: bytes) -> int | None:
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response[9:12])


def exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple[bytes, float, bool]:
    """Send raw bytes on a new connection and read what comes back (see `read_response`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        return read_response(sock, timeout)


# ---- fixtures ---------------------------------------------------------------------------------

# Short timeouts so that a test waits seconds, not the defaults' tens of seconds.
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
BODY_TOTAL_TIMEOUT = 3.0
SHORT = ("--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
         "--body-total-timeout", str(BODY_TOTAL_TIMEOUT))


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    server = start_edge_server(tmp_path_factory.mktemp("edge"), *SHORT)
    yield server
    server.stop()


def still_serves(server: EdgeServer) -> None:
    response = httpx.get(server.url + "/-/", timeout=5)
    assert response.status_code == 200, response.text


# ---- 1. the header section is bounded while it is read ----------------------------------------

HEAD_SIZE = 200 * MiB


def _hostile_heads() -> Iterator[object]:
    yield pytest.param(b"GET /-/ HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * MiB, id="one-huge-value")
    yield pytest.param(b"GET /-/ HTTP/1.1\r\nHost: x\r\n", b"X-Occi-Attribute: a=\"b\"\r\n" * (MiB // 24),
                       id="many-fields")
    yield pytest.param(b"GET /", b"a" * MiB, id="huge-target")
    # optional whitespace is not part of a value the callbacks see: the raw bound catches it
    yield pytest.param(b"GET /-/ HTTP/1.1\r\nHost: x\r\nX-Pad:", b" " * MiB, id="whitespace")


@pytest.mark.parametrize(("start", "piece"), list(_hostile_heads()))
def test_a_200_mb_header_section_is_431_with_memory_and_cpu_bounded(edge: EdgeServer, start: bytes,
                                                                    piece: bytes) -> None:
    """Before the edge: 462 MB peak RSS and ~100 s CPU. Now: 431 at once, < 20 MiB, < 3 s CPU."""
    still_serves(edge)
    peak_before, cpu_before = edge.peak_rss_mib(), edge.cpu_seconds()
    stop = threading.Event()
    sent = [0]

    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        def send() -> None:
            try:
                sock.sendall(start)
                while sent[0] < HEAD_SIZE and not stop.is_set():
                    sock.sendall(piece)
                    sent[0] += len(piece)
            except OSError:
                pass  # the server closed: that is the point

        sender = threading.Thread(target=send, daemon=True)
        started = time.monotonic()
        sender.start()
        response, first_byte, _closed = read_response(sock, timeout=20)
        # The client goes on sending what it has (as a client that does not read would) until the
        # server closes: what the server reads after its answer is dropped, not kept.
        sender.join(timeout=30)
        stop.set()
        elapsed = time.monotonic() - started

    assert status_of(response) == 431, response[:300]
    assert b"header section is larger than 65536 bytes" in response
    assert first_byte < 5, f"the 431 took {first_byte:.1f} s"
    growth = edge.peak_rss_mib() - peak_before
    cpu = edge.cpu_seconds() - cpu_before
    assert growth < 20, f"peak RSS grew by {growth:.1f} MiB"
    assert cpu < 3, f"the server spent {cpu:.1f} s of CPU on it"
    assert elapsed < 20
    still_serves(edge)


def test_a_head_just_under_the_limit_is_served(edge: EdgeServer) -> None:
    """The limit is the limit: 60 KiB of header fields are read and answered."""
    fields = [(f"x-pad-{i}", "v" * 1000) for i in range(60)]
    response = httpx.get(edge.url + "/-/", headers=fields, timeout=10)
    assert response.status_code == 200


def test_a_head_just_over_the_limit_is_431(edge: EdgeServer) -> None:
    fields = [(f"x-pad-{i}", "v" * 1000) for i in range(66)]
    response = httpx.get(edge.url + "/-/", headers=fields, timeout=10)
    assert response.status_code == 431
    assert response.headers["connection"] == "close"
    assert "OCCI/1.2" in response.headers["server"]


# ---- 2. read timeouts -------------------------------------------------------------------------

POST_HEAD = b"POST /compute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/occi+json\r\n"


def _assert_408_and_closed(response: bytes, first_byte: float, closed: bool, *, within: float,
                           mentions: str) -> None:
    assert status_of(response) == 408, response[:300]
    assert mentions.encode() in response, response
    assert first_byte <= within, f"the 408 came after {first_byte:.2f} s"
    assert closed, "the connection was not let go after the 408"


def test_a_body_shorter_than_its_content_length_is_408_and_freed(edge: EdgeServer) -> None:
    started = time.monotonic()
    response, first, closed = exchange(edge.port, POST_HEAD + b"Content-Length: 5000\r\n\r\n" + b"{" * 100)
    _assert_408_and_closed(response, first, closed, within=BODY_TIMEOUT + 1.5, mentions="no body data")
    assert time.monotonic() - started < BODY_TIMEOUT + 5
    still_serves(edge)


def test_a_chunked_body_without_its_terminator_is_408_and_freed(edge: EdgeServer) -> None:
    response, first, closed = exchange(
        edge.port, POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"5\r\n{\"a\":\r\n")
    _assert_408_and_closed(response, first, closed, within=BODY_TIMEOUT + 1.5, mentions="no body data")


def test_a_trickled_body_is_408_at_the_total_timeout(edge: EdgeServer) -> None:
    """One byte every 0.25 s never trips the idle timeout; the total one ends it."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(POST_HEAD + b"Content-Length: 1000\r\n\r\n")
        started = time.monotonic()
        sock.settimeout(0.25)
        response = b""
        while time.monotonic() - started < BODY_TOTAL_TIMEOUT + 3:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not piece:
                break
            response += piece
        elapsed = time.monotonic() - started
    assert status_of(response) == 408, response
    assert b"longer than 3 seconds" in response
    assert BODY_TOTAL_TIMEOUT - 0.5 <= elapsed <= BODY_TOTAL_TIMEOUT + 3


def test_trickled_headers_are_408_at_the_header_timeout(edge: EdgeServer) -> None:
    request = b"GET /-/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        started = time.monotonic()
        response = b""
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - started > HEADER_TIMEOUT + 0.3:
                response, _, _ = read_response(sock, timeout=3)
                break
    assert status_of(response) == 408, response
    assert b"headers did not arrive within 1 seconds" in response


def test_a_connection_that_sends_nothing_is_closed(edge: EdgeServer) -> None:
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        response, _, closed = read_response(sock, timeout=HEADER_TIMEOUT + 3)
    assert closed and response == b""


def test_slowloris_connections_are_all_let_go(edge: EdgeServer) -> None:
    """200 connections sending one byte of their head every 0.5 s: each is closed by the header timeout."""
    count = 200
    request = b"GET /-/ HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 64
    socks = [socket.create_connection(("127.0.0.1", edge.port), timeout=5) for _ in range(count)]
    try:
        for sock in socks:
            sock.setblocking(False)
        answers: dict[int, bytes] = {i: b"" for i in range(count)}
        done: set[int] = set()
        started = time.monotonic()
        position = 0
        served_meanwhile = False
        while len(done) < count and time.monotonic() - started < HEADER_TIMEOUT + 5:
            for i, sock in enumerate(socks):
                if i in done:
                    continue
                try:
                    if position < len(request):
                        sock.send(request[position:position + 1])
                except OSError:
                    done.add(i)
                    continue
                try:
                    piece = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    done.add(i)
                    continue
                if not piece:
                    done.add(i)
                answers[i] += piece
            position += 1
            if not served_meanwhile:
                still_serves(edge)  # the server answers others while it holds them
                served_meanwhile = True
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    assert len(done) == count, f"{count - len(done)} slow connections are still open after {elapsed:.1f} s"
    assert elapsed < HEADER_TIMEOUT + 5
    with_408 = sum(1 for answer in answers.values() if status_of(answer) == 408)
    assert with_408 >= count * 0.9, f"only {with_408} of {count} got their 408"
    still_serves(edge)


# ---- 3. the connection cap ------------------------------------------------------------------

def test_connections_beyond_the_cap_are_503_and_the_cap_frees_up(tmp_path: Path) -> None:
    server = start_edge_server(tmp_path / "data", "--max-connections", "5", "--header-timeout", "30")
    held: list[socket.socket] = []
    try:
        time.sleep(0.3)  # the start-up probe's connections are gone
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(5)]
        time.sleep(0.3)
        for _ in range(3):
            response, _, closed = exchange(server.port, b"GET /-/ HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
            assert status_of(response) == 503, response
            assert b"too many open connections" in response and closed
        assert "503: 5 connections open (max_connections)" in server.log()
        # the held connections still work
        held[0].sendall(b"GET /-/ HTTP/1.1\r\nHost: x\r\n\r\n")
        response, _, _ = read_response(held[0], timeout=5)
        assert status_of(response) == 200
        for sock in held:
            sock.close()
        held = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            response, _, _ = exchange(server.port, b"GET /-/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if status_of(response) == 200:
                break
            time.sleep(0.1)
        assert status_of(response) == 200, "the cap did not free up when the connections closed"
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_the_cap_holds_under_a_flood(tmp_path: Path) -> None:
    """50 connections against a cap of 10: 10 served, 40 answered 503, memory unmoved."""
    server = start_edge_server(tmp_path / "data", "--max-connections", "10", "--header-timeout", "30")
    socks: Sequence[socket.socket] = []
    try:
        time.sleep(0.3)
        peak_before = server.peak_rss_mib()
        socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(50)]
        refused = 0
        for sock in socks:
            sock.settimeout(0.5)
            try:
                refused += sock.recv(64).startswith(b"HTTP/1.1 503")
            except TimeoutError:
                pass
        assert refused == 40
        assert server.peak_rss_mib() - peak_before < 20
    finally:
        for sock in socks:
            sock.close()
        server.stop()
