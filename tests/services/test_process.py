"""The shared process plumbing: ports that no outgoing connection can take, and a start that
survives a port taken between the pick and the service's bind."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.services import _process
from tests.services._process import ServiceError, ephemeral_range, free_port, start_retrying_port_clash


def test_free_ports_lie_below_the_ephemeral_range_and_bind() -> None:
    # An outgoing connection's source port comes from the ephemeral range; a port there could be
    # taken between our pick and the service's bind (the uWSGI "Address already in use" in CI).
    low, _ = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < low for port in ports)
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


class Scripted:
    """Stands in for the random picker: hands out the given ports in order."""

    def __init__(self, ports: list[int]) -> None:
        self.ports: Iterator[int] = iter(ports)

    def randrange(self, start: int, stop: int) -> int:
        return next(self.ports)


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen()
        taken = listener.getsockname()[1]
        _process._handed_out.discard(taken)
        spare = free_port()
        _process._handed_out.discard(spare)
        monkeypatch.setattr(_process, "_picker", Scripted([taken, spare]))
        assert free_port() == spare


def clash(n: int) -> ServiceError:
    return ServiceError(f"uWSGI {n}: probably another instance is running on 127.0.0.1:41109. "
                        "bind(): Address already in use")


def test_a_start_that_lost_its_port_runs_again() -> None:
    calls: list[int] = []

    def start() -> str:
        calls.append(len(calls))
        if len(calls) < 3:
            raise clash(len(calls))
        return "up"

    assert start_retrying_port_clash(start) == "up"
    assert len(calls) == 3


def test_a_start_that_keeps_losing_its_port_fails_with_the_last_reason() -> None:
    calls: list[int] = []

    def start() -> str:
        calls.append(len(calls))
        raise clash(len(calls))

    with pytest.raises(ServiceError, match="uWSGI 3:"):
        start_retrying_port_clash(start, attempts=3)
    assert len(calls) == 3


def test_any_other_failure_is_not_retried() -> None:
    calls: list[int] = []

    def start() -> str:
        calls.append(len(calls))
        raise ServiceError("PostgreSQL: invalid value for parameter")

    with pytest.raises(ServiceError, match="invalid value"):
        start_retrying_port_clash(start)
    assert calls == [0]
