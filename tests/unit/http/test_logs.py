"""http/logs.py: JSON and text log lines with the request id, and the audit line."""

from __future__ import annotations

import json
import logging
import re

import pytest

from occipy.http import logs


def record(message: str = "hello %s", *args: object, name: str = "occipy.test", **extra: object) -> logging.LogRecord:
    item = logging.LogRecord(name, logging.INFO, __file__, 1, message, args or ("world",), None)
    for key, value in extra.items():
        setattr(item, key, value)
    return item


def test_json_lines_carry_time_level_logger_message() -> None:
    document = json.loads(logs.JsonFormatter().format(record()))
    assert document["message"] == "hello world"
    assert document["level"] == "info" and document["logger"] == "occipy.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["time"])
    assert "request_id" not in document


def test_json_lines_carry_the_request_id_being_served() -> None:
    token = logs.REQUEST_ID.set("rid-1")
    try:
        document = json.loads(logs.JsonFormatter().format(record()))
    finally:
        logs.REQUEST_ID.reset(token)
    assert document["request_id"] == "rid-1"


def test_json_lines_carry_fields_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        item = record(**{logs.FIELDS: {"status": 201, "principal": None}})
        item.exc_info = sys.exc_info()
    document = json.loads(logs.JsonFormatter().format(item))
    assert document["status"] == 201 and document["principal"] is None
    assert "ValueError: boom" in document["exception"]


def test_a_json_line_is_one_line_whatever_the_message() -> None:
    line = logs.JsonFormatter().format(record("a\nb\r\nc %s", "\u2028"))
    assert "\n" not in line and json.loads(line)["message"] == "a\nb\r\nc \u2028"


def test_text_lines_append_the_request_id() -> None:
    token = logs.REQUEST_ID.set("rid-2")
    try:
        line = logs.TextFormatter().format(record())
    finally:
        logs.REQUEST_ID.reset(token)
    assert re.fullmatch(r"\S+Z INFO occipy\.test: hello world \[request_id=rid-2\]", line)


def test_audit_writes_one_line_per_write(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="occipy.audit"):
        logs.audit(request_id="r1", principal="alice", tenant="t1", method="POST", path="/compute/\nx y",
                   status=201, operation="op-1")
    assert len(caplog.records) == 1
    item = caplog.records[0]
    assert item.name == "occipy.audit"
    assert item.getMessage() == (
        "POST /compute/\\nx\\x20y 201 request_id=r1 principal=alice tenant=t1 operation=op-1")
    assert getattr(item, logs.FIELDS) == {"request_id": "r1", "principal": "alice", "tenant": "t1",
                                          "method": "POST", "path": "/compute/\nx y", "status": 201,
                                          "operation": "op-1"}


def test_audit_shows_unknown_fields_as_a_dash(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="occipy.audit"):
        logs.audit(request_id="r2", principal=None, tenant=None, method="DELETE", path="/compute/1",
                   status=204, operation=None)
    assert caplog.records[0].getMessage().endswith("principal=- tenant=- operation=-")


def test_configure_installs_one_root_handler() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("warning", "json")
        assert len(root.handlers) == 1 and isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        assert root.level == logging.WARNING
        logs.configure("info", "text")
        assert isinstance(root.handlers[0].formatter, logs.TextFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
