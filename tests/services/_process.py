"""Process plumbing shared by the service fixtures: free ports, bounded waits, stopping by PID.

Every wait here has a deadline, and every failure says which service failed and shows the tail of
its log. PID 1 on our machines does not reap orphans, so a process that is not our child counts
as gone once it is a zombie. Standard library only; no fixture module imports another.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A test service could not be installed, started or stopped; the message says why."""


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PORT_SPAN = 12_000  # how many ports below the ephemeral range `free_port` picks from
_picker = random.SystemRandom()  # not `random`: pytest-randomly reseeds that before every test
_handed_out: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel picks from for bind(0) and for every outgoing connection's source."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody uses now and that no outgoing connection can take.

    A port from bind(0) lies in the ephemeral range, which the kernel also uses for the source port
    of every outgoing connection: between our pick and the service's own bind, any client on the
    host could take it (uWSGI then exits with "Address already in use"). A port below that range
    is only ever taken by an explicit bind, so we pick one at random there, check that it binds, and
    never hand out the same one twice in this process.
    """
    low = ephemeral_range()[0]
    first = max(1024, low - PORT_SPAN)
    for _ in range(1000):
        port = _picker.randrange(first, low)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or in TIME_WAIT): pick again
        _handed_out.add(port)
        return port
    raise ServiceError(f"no free TCP port on 127.0.0.1 in {first}..{low - 1}")


def port_clash(error: BaseException) -> bool:
    """Whether a service failed because a port it was given was bound by someone else meanwhile."""
    return "Address already in use" in str(error)


def start_retrying_port_clash(start: Callable[[], T], *, attempts: int = 3) -> T:
    """`start()`, run again (it picks new ports) when it failed only because a port was taken."""
    for _ in range(attempts - 1):
        try:
            return start()
        except ServiceError as exc:
            if not port_clash(exc):
                raise
    return start()


def tail(path: Path | str, lines: int = 40) -> str:
    """The last `lines` lines of a log file (or a note that it is missing)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def failure(what: str, reason: str, log: Path | str | None = None) -> ServiceError:
    message = f"{what}: {reason}"
    if log is not None:
        message += f"\n--- last lines of {log} ---\n{tail(log)}"
    return ServiceError(message)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` asking the kernel to send `sig` to the child when pytest dies (even by SIGKILL).

    It only calls prctl(2), so it is safe in a forked child of a threaded parent (ruff PLW1509).
    """

    def _set() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)

    return _set


def wait_for(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | str | None = None,
    interval: float = 0.05,
) -> None:
    """Poll `ready()` until it is true; fail early if `process` exits, and at `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise failure(what, f"exited with status {process.returncode} before it was ready", log)
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet; the deadline makes this an error
            pass
        if time.monotonic() > deadline:
            raise failure(what, f"not ready after {timeout:.0f} s", log)
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def run(
    args: Sequence[str], *, what: str, timeout: float, env: dict[str, str] | None = None,
    user: str | None = None, cwd: Path | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; a non-zero exit or a time-out raises with its output's tail."""
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, env=env, user=user, cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stderr or b"")
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        raise ServiceError(f"{what}: `{' '.join(args)}` took more than {timeout:.0f} s\n{text[-3000:]}") from None
    except OSError as exc:
        raise ServiceError(f"{what}: cannot run `{args[0]}`: {exc}") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise ServiceError(f"{what}: `{' '.join(args)}` exited with {done.returncode}\n{output}")
    return done


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, which PID 1 here never reaps, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_pid(pid: int, *, sig: int = signal.SIGTERM, timeout: float = 10.0, group: bool = False) -> bool:
    """Send `sig`, wait up to `timeout` s, then SIGKILL. True when it had to SIGKILL."""
    send = os.killpg if group else os.kill
    try:
        send(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return False
        time.sleep(0.05)
    try:
        send(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    return True


def stop_process(
    process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 10.0
) -> bool:
    """Stop a child we started and reap it: `sig`, wait, SIGKILL. True when it had to SIGKILL."""
    if process.poll() is not None:
        return False
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
        return False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pids_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains `text` (a unique temp dir of ours)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and pid_alive(int(entry)):
            found.append(int(entry))
    return found
