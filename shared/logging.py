"""Structured JSON logs (structlog) for gateway and worker, with a request id and secrets scrubbed."""

import asyncio
import atexit
import functools
import logging
import re
import sys
import time
import uuid
from collections.abc import MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import pydantic_core
import structlog
from structlog.typing import EventDict, WrappedLogger

from shared.contracts.headers import HEADER_REQUEST_ID

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|hash|jwt|cookie", re.IGNORECASE)
_SECRET_VALUES = [
    re.compile(r"\$argon2(?:id|i|d)\$[\w$,=+/.-]*"),  # PHC hashes: $argon2id$v=19$m=…,t=…,p=…$salt$digest
    re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"),  # JWTs
    re.compile(r"(?i)(bearer\s+)[\w.~+/=-]+"),
    re.compile(r"(?i)(amqps?|postgres(ql)?(\+\w+)?)://[^:@/\s]+:[^@/\s]+@"),  # URLs with a password
]
_REQUEST_ID = re.compile(r"^[\w.:-]{1,128}$")
REDACTED = "[redacted]"
_request_notes: ContextVar[dict[str, str] | None] = ContextVar("request_notes", default=None)


def _scrub_text(value: str) -> str:
    if not _may_hold_secret(value):  # most values: skip the four regular expressions
        return value
    for pattern in _SECRET_VALUES:
        value = pattern.sub(REDACTED, value)
    return value


@functools.lru_cache(maxsize=4096)  # log lines reuse a handful of field names
def _secret_key(key: str) -> bool:
    return _SECRET_KEYS.search(key) is not None


def _may_hold_secret(value: str) -> bool:
    """A cheap test that every string a pattern of _SECRET_VALUES matches passes."""
    return "$argon2" in value or "eyJ" in value or "://" in value or "bearer" in value.lower()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {key: REDACTED if _secret_key(str(key)) else _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def scrub_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Drop secret-named fields and mask hashes, JWTs and credentials in every value."""
    return {
        key: REDACTED if _secret_key(key) and key != "event" else _scrub(value) for key, value in event_dict.items()
    }


def _render_exception_text(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    if "exception" in event_dict and isinstance(event_dict["exception"], str):
        event_dict["exception"] = _scrub_text(event_dict["exception"])
    return event_dict


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (a test runner may swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _StderrLogger:
    """structlog's output for our own (hot path) log lines: the rendered JSON straight to sys.stderr,
    without a standard-library LogRecord, handler and formatter per line."""

    def __init__(self, name: str = "") -> None:
        self.name = name  # for add_logger_name

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stderr_logger(*args: Any) -> _StderrLogger:
    return _StderrLogger(str(args[0]) if args else "")


_lines: dict[str, Any] = {"service": "", "level": logging.INFO}  # what configure_logging set, for write_line
FLUSH_S = 0.2  # per-request and per-command lines wait at most this long, to share one write


class _Pending:
    """Lines written together, FLUSH_S after the first (or at 256 lines, or at exit): one system
    call for many instead of one each (stderr is unbuffered under the launchers)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.scheduled = False

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= 256:
            self.flush()
        elif not self.scheduled:
            try:
                asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
                self.scheduled = True
            except RuntimeError:  # no event loop: write at once
                self.flush()

    def flush(self) -> None:
        self.scheduled = False
        if self.lines:
            lines, self.lines = self.lines, []
            sys.stderr.write("".join(lines))


_pending = _Pending()
atexit.register(_pending.flush)
_second: list[Any] = [0, ""]  # the last whole second and its ISO text: most lines share it


def _timestamp() -> str:
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[:] = [second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")]
    return f"{_second[1]}.{int((now - second) * 1_000_000):06d}Z"


def write_line(event: str, logger: str, fields: dict[str, Any], level: int = logging.INFO) -> None:
    """One JSON line to stderr, as the processors below would render it, for the lines written per
    request or per command: they skip the rest of the processor chain (a visible share of a request's
    CPU) and share their writes, but not the scrubber: a method, a request id, a header may come
    from a caller, and whatever a caller sends may hold a secret."""
    if level < _lines["level"]:
        return
    line = {
        "event": event,
        "service": _lines["service"],
        "level": logging.getLevelName(level).lower(),
        "logger": logger,
        "timestamp": _timestamp(),
        **fields,
    }
    _pending.add(render_line(line) + "\n")


# Every word that makes the scrubber act (_SECRET_KEYS, _may_hold_secret), lower case.
_MARKERS = ("pass", "secret", "token", "authorization", "hash", "jwt", "cookie", "$argon2", "eyj", "://", "bearer")


def render_line(line: dict[str, Any]) -> str:
    """The line as JSON, scrubbed. Most lines hold none of the scrubber's words, and rendering first
    finds that out at a third of the price of walking every field (per-request CPU): a line that is
    all ASCII and holds none of them, in any case, is left as it is. Any other (non-ASCII text
    included: case folding may turn a letter into one of theirs) is scrubbed field by field."""
    rendered = pydantic_core.to_json(line, fallback=str).decode()
    if rendered.isascii():
        lowered = rendered.lower()
        for marker in _MARKERS:
            if marker in lowered:
                break
        else:
            return rendered
    return pydantic_core.to_json(_scrub(line), fallback=str).decode()


def configure_logging(service: str, level: int | str = logging.INFO) -> None:
    """JSON lines on stderr for structlog and standard-library loggers alike (idempotent).

    structlog's own lines (the per-request and per-command ones) render directly; standard-library
    records (uvicorn, aio-pika, our `logging` loggers) go through a handler with the same processors.
    Nothing below `level` (LOG_LEVEL) is written, whoever logs it.
    """

    def add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    shared: list[Any] = [
        add_service,
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[Any] = [
        structlog.processors.format_exc_info,
        _render_exception_text,
        scrub_secrets,
        structlog.processors.JSONRenderer(default=str),
    ]
    numeric_level = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    _lines.update(service=service, level=numeric_level)
    structlog.configure(
        processors=[*shared, *rendering],
        logger_factory=_stderr_logger,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.setLevel(numeric_level)  # uvicorn sets its own loggers' levels: their records still stop here
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _StderrHandler | logging.StreamHandler)
                     or type(h).__module__.startswith("_pytest")] + [handler]  # fmt: skip
    root.setLevel(numeric_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # The gateway writes its own access line (route template, status, ms, request and command ids);
    # uvicorn's would be a second line per request. With no handler, uvicorn does not even format it.
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate = [], False


def new_request_id(incoming: str | None) -> str:
    """The caller's X-Request-ID when it is a sane token (and nothing like a secret), else a fresh one:
    it is echoed, logged and carried to the worker."""
    if incoming and _REQUEST_ID.match(incoming) and not _may_hold_secret(incoming):
        return incoming
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value else None


def begin_request(request_id: str) -> dict[str, str]:
    """Bind the request id to this request's log lines; returns the notes its handler adds (command_id)."""
    notes: dict[str, str] = {}
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    _request_notes.set(notes)
    return notes


def trace_headers(command_id: uuid.UUID) -> dict[str, str]:
    """Headers that carry this request to the worker; also notes the command id on the request's logs."""
    notes = _request_notes.get()
    if notes is not None:  # a mutable holder: the handler runs in a copy of the middleware's context
        notes["command_id"] = str(command_id)
    request_id = current_request_id()
    return {HEADER_REQUEST_ID: request_id} if request_id else {}


def header_text(headers: MutableMapping[str, Any] | None, name: str) -> str | None:
    value = (headers or {}).get(name)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return str(value) if value else None
