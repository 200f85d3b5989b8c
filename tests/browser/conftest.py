"""A real Chromium (Debian's, driven by Playwright) against `vaxvault serve`.

Each page records console errors and Content-Security-Policy violations; a test that leaves any
fails, so a page that works only with inline script or a CDN cannot pass. Screenshots of each
step go to tests/artifacts/ (git-ignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser import tools
from tests.reliability.served import ServedApi, served

pytestmark = pytest.mark.slow


@pytest.fixture
async def chromium_browser() -> AsyncIterator[Any]:
    """Debian's Chromium through Playwright's async API (the tests' own event loop also runs
    asyncpg; the sync API would claim the loop for itself)."""
    executable = tools.chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable,
                                                   args=tools.CHROMIUM_FLAGS)
        yield browser
        await browser.close()


@dataclass
class Tab:
    """A page, the problems it reported, and numbered screenshots for one test."""

    page: Any
    name: str
    problems: list[str] = field(default_factory=list)
    shots: int = 0

    async def shot(self, step: str) -> Path:
        self.shots += 1
        tools.ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = tools.ARTIFACTS / f"{self.name}-{self.shots:02d}-{step}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def tab(chromium_browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Tab]:
    context = await chromium_browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    # Generous: the machines that run the suite are shared; a step that works finishes far sooner.
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    opened = Tab(page, name)
    page.on("console", lambda m: opened.problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.problems.append(f"page error: {e}"))
    yield opened
    report = getattr(request.node, "call_report", None)
    if report is not None and report.failed:
        await opened.shot("failed")  # what the page showed when the test failed
    await context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.call_report = report  # type: ignore[attr-defined]
    return report


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Start `vaxvault serve` with these settings and extra environment (a backup repository)."""
    stack: list[Any] = []

    def start(settings: Any, **environment: str) -> ServedApi:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        context = served(settings, tmp_path / f"serve-{len(stack)}.log")
        api = context.__enter__()
        stack.append(context)
        return api

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)
