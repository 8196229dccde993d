"""Structured JSON logs: one object per line, with the request fields as top-level keys.

The access log (logger ``clientml_mle.serve.access``) writes one line per request::

    {"ts": "...", "level": "INFO", "logger": "clientml_mle.serve.access", "msg": "request",
     "request_id": "...", "method": "POST", "route": "/v1/predict", "status": 200,
     "latency_ms": 0.41, "n_records": 1}
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS_LOGGER = "clientml_mle.serve.access"
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; ``extra=`` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = vars(record)
        for key in fields.keys() - _STANDARD:  # the extra= fields: a set difference, not a scan of them all
            if not key.startswith("_"):
                entry[key] = fields[key]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: uvicorn's and our loggers, JSON on stdout."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stdout": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stdout"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "clientml_mle": {"handlers": ["stdout"], "level": level, "propagate": False},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Apply :func:`log_config` in this process (what the server's workers do).

    Also turns off what every log record would otherwise collect and no line shows: the caller's source
    line (a walk up the stack), the thread, process and multiprocessing names (the logging HOWTO's
    "Optimization"): the access log writes a line per request, and these took a third of its cost.
    """
    import logging.config

    logging.config.dictConfig(log_config(level))
    logging.captureWarnings(True)
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # documented in the logging HOWTO (Optimization), though private by its name
