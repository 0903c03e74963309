"""Process supervision for scripts/openstack/cloud.py: start each process in a process group of its own,
wait for it with a deadline, and stop them all (SIGTERM, wait, SIGKILL, reap, sweep).

Standard library only (cloud.py runs under any python3). PID 1 on our machines reaps nothing, so the
supervisor reaps its children itself; PR_SET_PDEATHSIG takes them down if the supervisor dies.
"""

from __future__ import annotations

import ctypes
import http.client as http_client
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

STOP_GRACE = 5.0


class Failure(Exception):
    """One step failed; the message names it and carries its log's tail."""


class Stopped(Exception):
    """SIGTERM/SIGINT arrived during set-up."""


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


_picker = random.SystemRandom()
_handed_out: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1 below the kernel's ephemeral range, never the same one twice.

    A port from bind(0) is in the ephemeral range, which the kernel also uses as the source port of
    outgoing connections (the cloud's services open many while starting), so one of them could take
    it before uWSGI binds it. The test harness does the same (tests/services/_process.py).
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first = max(1024, low - 12_000)
    for _ in range(1000):
        port = _picker.randrange(first, low)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise Failure(f"no free TCP port on 127.0.0.1 in {first}..{low - 1}")


def die_with_parent() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: if the supervisor dies, so do we


def http(method: str, url: str, body: Any = None, token: str | None = None, *, raw: bytes | None = None,
         timeout: float = 60, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """One HTTP request; returns (status, headers, parsed JSON or None). Never raises for a status."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
    request.add_header("Accept", "application/json")
    if token:
        request.add_header("X-Auth-Token", token)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    for attempt in range(4):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                status, head, text = reply.status, dict(reply.headers), reply.read()
            break
        except urllib.error.HTTPError as exc:
            status, head, text = exc.code, dict(exc.headers), exc.read()
            break
        except (ConnectionResetError, http_client.RemoteDisconnected):
            # uwsgi's http-socket sometimes resets a connection it has not read yet: try again
            if attempt == 3:
                raise
            time.sleep(0.2)
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text.decode(errors="replace")
    return status, head, parsed


def expect(answer: tuple[int, dict[str, str], Any], what: str, *ok: int) -> Any:
    status, _, body = answer
    if status not in (ok or (200, 201, 202, 204)):
        raise Failure(f"{what}: HTTP {status}: {str(body)[:500]}")
    return body


class Supervisor:
    """Starts every process in its own process group, records it in DIR/run/pgids, stops them all."""

    def __init__(self, directory: Path, timeout: float, env: dict[str, str]) -> None:
        self.dir = directory
        self.deadline = time.monotonic() + timeout
        self.t0 = time.monotonic()
        self.timings: dict[str, float] = {}
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.env = env
        for sub in ("log", "run"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    def note(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {message}", flush=True)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None,
              user: str | None = None) -> subprocess.Popen[bytes]:
        if self.stopping.is_set():
            raise Stopped()
        log = self.dir / "log" / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**self.env, **(env or {})}, cwd=self.dir, user=user,
                                       start_new_session=True,
                                       preexec_fn=die_with_parent)  # noqa: PLW1509 - prctl only
        with self.lock:
            self.processes.append((name, process))
            with open(self.dir / "run" / "pgids", "a") as pgids:
                pgids.write(f"{process.pid}\n")
        return process

    def step(self, name: str, args: list[str], *, timeout: float = 180, env: dict[str, str] | None = None,
             user: str | None = None) -> None:
        """Run a one-shot command (a migration, keystone-manage) to completion."""
        process = self.spawn(name, args, env, user)
        try:
            code = process.wait(timeout=min(timeout, max(1.0, self.deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise Failure(f"{name} did not finish in time\n{log_tail(self.dir / 'log' / f'{name}.log')}") from None
        if self.stopping.is_set():
            raise Stopped()
        if code != 0:
            raise Failure(f"{name} exited with {code}\n{log_tail(self.dir / 'log' / f'{name}.log')}")

    def wait(self, what: str, ready: Callable[[], bool], *, process: subprocess.Popen[bytes] | None = None,
             log: str | None = None, interval: float = 0.2) -> None:
        while True:
            if self.stopping.is_set():
                raise Stopped()
            if process is not None and process.poll() is not None:
                raise Failure(f"{what}: exited with {process.returncode}\n"
                              f"{log_tail(self.dir / 'log' / f'{log}.log') if log else ''}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001, S110 - not ready yet
                pass
            if time.monotonic() > self.deadline:
                raise Failure(f"{what}: not ready in time\n"
                              f"{log_tail(self.dir / 'log' / f'{log}.log') if log else ''}")
            time.sleep(interval)

    def wait_http(self, name: str, url: str, process: subprocess.Popen[bytes]) -> None:
        def up() -> bool:
            status, _, _ = http("GET", url, timeout=5)
            return status < 500
        self.wait(f"{name} at {url}", up, process=process, log=name)
        self.timings[f"{name} ready"] = round(time.monotonic() - self.t0, 1)
        self.note(f"{name} answers at {url}")

    def stop(self) -> None:
        """SIGTERM every process group, wait up to STOP_GRACE s, SIGKILL what is left, reap all."""
        self.stopping.set()
        with self.lock:
            processes = list(reversed(self.processes))
        for name, process in processes:
            try:  # PostgreSQL: SIGINT is its "fast" shutdown (SIGTERM would wait for clients)
                os.killpg(process.pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        for _, process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        stubborn = [name for name, process in processes if process.poll() is None]
        if stubborn:
            self.note(f"SIGKILL after {STOP_GRACE:.0f} s: {', '.join(stubborn)}")
        for _, process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # also any worker a leader left behind
            except (ProcessLookupError, PermissionError):
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        sweep(self.dir)


def sweep(directory: Path) -> list[int]:
    """SIGKILL any process left whose command line or environment names `directory` (ours alone).

    Catches what escaped our process groups: an `epmd -daemon` that a dying rabbit node starts
    for itself, say (it calls setsid). Every service here has HOME under `directory`.
    """
    needle = str(directory).encode()
    killed: list[int] = []
    for _ in range(3):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        continue
                text = Path(f"/proc/{entry}/cmdline").read_bytes() + Path(f"/proc/{entry}/environ").read_bytes()
            except (OSError, IndexError):
                continue
            if needle + b"/" in text or text.endswith(needle) or needle + b"\0" in text:
                found.append(int(entry))
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed += found
        time.sleep(0.2)
    return killed


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
