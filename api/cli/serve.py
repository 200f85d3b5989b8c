"""`vaxvault serve`: run the API with uvicorn."""

from __future__ import annotations

import argparse

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


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    # Imported here, not at the top: every other command (backup run, restore...) would pay
    # for loading the GraphQL app and uvicorn on each start (seconds on a busy machine).
    import uvicorn

    from api.app import create_app

    settings.require_database_url()
    common = {"host": host, "port": port, "log_level": "warning", "access_log": False,
              "proxy_headers": True}
    if workers > 1:
        # Each worker process builds its own app from the environment.
        uvicorn.run("api.asgi:app", workers=workers, **common)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]


def run(args: argparse.Namespace, settings: Settings) -> int:
    serve(settings, args.host, args.port, args.workers)
    return 0
