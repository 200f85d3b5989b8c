"""GraphiQL in a real browser, with no route to any CDN: it loads from vaxvault's own files and
runs a query."""

from __future__ import annotations

from typing import Any

import pytest

from api.settings import Settings
from tests.browser import tools
from tests.browser.conftest import Tab
from tests.live_server import live_server

pytestmark = pytest.mark.slow


async def test_graphiql_loads_offline_and_runs_a_query(tab: Tab, settings: Settings) -> None:
    tools.graphiql_assets()
    with live_server(settings) as base:
        await _run_a_query(tab, base)


async def _run_a_query(tab: Tab, base: str) -> None:
    origin = base.removeprefix("http://")
    outside: list[str] = []

    async def only_this_server(route: Any) -> None:
        # Any request elsewhere (a CDN) is what the issue is about: record it and refuse it.
        if route.request.url.split("/")[2] != origin:
            outside.append(route.request.url)
            await route.abort()
        else:
            await route.continue_()

    await tab.page.route("**/*", only_this_server)
    await tab.page.goto(f"{base}/graphql")
    await tab.page.locator(".graphiql-container").wait_for()
    await tab.page.locator(".graphiql-query-editor .CodeMirror").wait_for()
    await tab.shot("loaded")
    await tab.page.locator("button.graphiql-execute-button").click()
    result = tab.page.locator(".result-window")
    await result.get_by_text('"division"').first.wait_for()
    text = await result.inner_text()
    assert '"role": "public"' in text and "Dhaka" in text
    await tab.shot("result")
    assert outside == []
    assert tab.problems == []
