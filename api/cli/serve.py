"""`vaxvault serve`: run the API with uvicorn."""

from __future__ import annotations

import argparse
import inspect
import os
import socket

from api.cli.output import whole_number
from api.settings import Settings

# How long a worker may take to start serving before uvicorn gives up on it.
WORKER_STARTUP_S = 120


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve the GraphQL API")
    add_server_flags(parser)
    parser.add_argument("--workers", type=whole_number(1), default=None,
                        help="worker processes, each with its own pool (default: one per core "
                             "in production, 1 in development)")
    parser.set_defaults(handler=run)


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    # A supervisor (systemd socket activation, a test harness) binds the port and hands the
    # listening socket over open, so no other process can take the port in between.
    parser.add_argument("--fd", type=int, metavar="FD",
                        help="serve on this inherited, already listening socket instead of "
                             "--host/--port")


def endpoint(host: str, port: int, fd: int | None) -> str:
    """The http:// address served: --host/--port, or the address the --fd socket is bound to."""
    if fd is not None:
        with socket.socket(fileno=os.dup(fd)) as sock:
            host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def serve(settings: Settings, host: str, port: int, workers: int = 1, fd: int | None = None) -> None:
    # Imported here, not at the top: every other command (backup run, restore...) would pay
    # for loading the GraphQL app and uvicorn on each start (seconds on a busy machine).
    import uvicorn

    from api.app import create_app

    settings.require_database_url()
    where: dict[str, object] = {"fd": fd} if fd is not None else {"host": host, "port": port}
    common = {**where, "log_level": "warning", "access_log": False, "proxy_headers": True}
    if workers > 1:
        # Each worker process builds its own app from the environment. Newer uvicorn restarts a
        # worker that is not serving within 5 s: on a busy machine importing the app takes
        # longer, and the workers would be restarted for ever.
        if "timeout_worker_healthcheck" in inspect.signature(uvicorn.run).parameters:
            common["timeout_worker_healthcheck"] = WORKER_STARTUP_S
        uvicorn.run("api.asgi:app", workers=workers, **common)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]


def default_workers(settings: Settings) -> int:
    """One per core the process may run on in production: a worker is one Python thread."""
    if not settings.production:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(args: argparse.Namespace, settings: Settings) -> int:
    serve(settings, args.host, args.port, args.workers or default_workers(settings), args.fd)
    return 0
