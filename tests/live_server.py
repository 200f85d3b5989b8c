"""The API served by a real uvicorn on 127.0.0.1, in a background thread, for HTTP tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from api.app import create_app
from api.settings import Settings
from tests.conftest import JWT_SECRET
from tests.sockets import listening_socket


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """Serve the app; yield its base URL once it has started; shut down (closing the pool) on exit."""
    with listening_socket() as sock:
        config = uvicorn.Config(create_app(settings), log_level="error", access_log=False,
                                lifespan="on")
        server = uvicorn.Server(config)
        started = threading.Event()

        async def serve() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            started.set()
            await task

        thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        thread.start()
        try:
            if not started.wait(timeout=60) or not server.started:
                raise RuntimeError("the API server did not start")
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=15)


@contextmanager
def live_migrated_server(postgres_url: str, migrated_template: str,
                         tmp_path_factory: pytest.TempPathFactory, prefix: str) -> Iterator[str]:
    """The API on a fresh migrated database of its own (dropped afterwards); yields the base URL."""
    from tests import harness

    name = harness.unique_name(prefix)
    url = harness.create_database(postgres_url, name, template=migrated_template)
    settings = Settings(database_url=url, jwt_secret=JWT_SECRET,
                        state_dir=tmp_path_factory.mktemp("state"))
    try:
        with live_server(settings) as base:
            yield base
    finally:
        harness.drop_database(postgres_url, name)
