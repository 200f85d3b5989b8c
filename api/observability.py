"""Request logs (JSON lines in production, readable lines in development) and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

LOGGER_NAME = "vaxvault"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, default=str)


class _ReadableFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        return f"{time.strftime('%H:%M:%S')} {record.levelname:<7} {record.getMessage()} {fields}"


def configure_logging(production: bool) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if production else _ReadableFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_event(message: str, **fields: Any) -> None:
    """Log one structured line; never pass personal data as a field."""
    logger = logging.getLogger(LOGGER_NAME)
    if logger.isEnabledFor(logging.INFO):
        # A record made here, not by Logger.info: that walks the stack for the caller's file
        # and line (findCaller), which neither formatter prints, on every request.
        record = logger.makeRecord(LOGGER_NAME, logging.INFO, "", 0, message, (), None,
                                   extra={"fields": fields})
        logger.handle(record)


MAX_CACHED_LABEL_SETS = 1024


class Metrics:
    """The API's Prometheus metrics, in a registry of their own (one per app).

    Requests are labelled by the route they reached: a path in `paths`, the one of `mounts`
    they lie under, or "other" (a 404 path is whatever a client or scanner sends: one label
    set each would grow the registry without bound).
    """

    def __init__(self, paths: Iterable[str] = (), mounts: Iterable[str] = ()) -> None:
        self.paths = frozenset(paths)
        self.mounts = tuple(m.rstrip("/") + "/" for m in mounts)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vaxvault_requests_total", "HTTP requests by path, GraphQL operation and status",
            ["path", "operation", "status"], registry=self.registry)
        self.latency = Histogram(
            "vaxvault_request_seconds", "Request latency by path and GraphQL operation",
            ["path", "operation"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def route(self, path: str) -> str:
        """The label of a request path: its route, or "other"."""
        if path in self.paths:
            return path
        for mount in self.mounts:
            if path.startswith(mount):
                return mount[:-1]
        return "other"

    def observe(self, path: str, operation: str, status: int, seconds: float) -> None:
        # The labelled children, looked up once per label set (labels() validates and locks
        # on every call); operation labels are bounded by the caller (MAX_OPERATION_LABELS).
        key = (path, operation, status)
        children = self.children.get(key)
        if children is None:
            route = self.route(path)
            children = (self.requests.labels(route, operation, str(status)),
                        self.latency.labels(route, operation))
            if len(self.children) < MAX_CACHED_LABEL_SETS:  # keyed by the raw path
                self.children[key] = children
        children[0].inc()
        children[1].observe(seconds)
