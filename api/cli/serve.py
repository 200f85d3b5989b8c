"""`vaxvault serve`: run the API with uvicorn."""

from __future__ import annotations

import argparse
import os
import socket

import uvicorn

from api.app import create_app
from api.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve the GraphQL API")
    add_server_flags(parser)
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (each with its own pool)")
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
    settings.require_database_url()
    where: dict[str, object] = {"fd": fd} if fd is not None else {"host": host, "port": port}
    common = {**where, "log_level": "warning", "access_log": False, "proxy_headers": True}
    if workers > 1:
        # Each worker process builds its own app from the environment.
        uvicorn.run("api.asgi:app", workers=workers, **common)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]


def run(args: argparse.Namespace, settings: Settings) -> int:
    serve(settings, args.host, args.port, args.workers, args.fd)
    return 0
