"""Log lines: the request id of the request being served, text or JSON lines, the audit line.

`REQUEST_ID` holds the id of the request the current task serves (each request runs in its own
task, so log lines written while serving it carry it). `configure()` sets the root handler for
`--log-format text|json`; `audit()` writes the one line per write on logger `occipy.audit`.
Imports only the standard library.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final

REQUEST_ID: ContextVar[str | None] = ContextVar("occipy_request_id", default=None)
# Structured fields ride on a log record under this attribute (`extra={FIELDS: {...}}`).
FIELDS: Final = "occipy_fields"
FORMATS: Final = ("text", "json")

audit_log = logging.getLogger("occipy.audit")


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> Mapping[str, object]:
    fields = getattr(record, FIELDS, None)
    return fields if isinstance(fields, Mapping) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": _time(record), "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            document["request_id"] = request_id
        document.update(_fields(record))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger>: <message> [request_id=<id>]` (the id when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        request_id = REQUEST_ID.get()
        if request_id is not None and "request_id" not in _fields(record):
            line += f" [request_id={request_id}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str, log_format: str) -> None:
    """Every logger (uvicorn's too, which must then be started with log_config=None) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def audit(*, request_id: str, principal: str | None, tenant: str | None, method: str, path: str,
          status: int, operation: str | None) -> None:
    """One line per write (POST, PUT, PATCH, DELETE) on logger `occipy.audit` (issue 8)."""
    if not audit_log.isEnabledFor(logging.INFO):
        return
    fields = {"request_id": request_id, "principal": principal, "tenant": tenant, "method": method,
              "path": path, "status": status, "operation": operation}
    # The path is the decoded one: escape control characters so that one write stays one line.
    shown = path.encode("unicode_escape").decode("ascii").replace(" ", "\\x20")
    audit_log.info("%s %s %d request_id=%s principal=%s tenant=%s operation=%s", method, shown, status,
                   request_id, _text(principal), _text(tenant), _text(operation), extra={FIELDS: fields})
