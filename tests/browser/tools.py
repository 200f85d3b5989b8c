"""What the browser and HTTP-compliance tests need from outside Python, found or installed here.

Chromium comes from Debian (`apt-get install chromium`; Playwright cannot download its own build
on this network); npm packages are installed on demand into tests/.cache/node. Without them the
tests skip with one line saying how to install them, except under CI=true, where .ci/run installs
them and their absence is a failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api.browser import assets

NODE_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "node"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Pinned like GraphiQL's files; graphql-http's audit suite runs on graphql-js 16.
AUDIT_PACKAGES = ("graphql-http@1.23.1", "graphql@16.9.0")


def _missing(what: str, how: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing under CI=true; .ci/run should have installed it ({how})")
    pytest.skip(f"{what} is not installed: {how}")


def chromium() -> str:
    """The system Chromium's path (VAXVAULT_TEST_CHROMIUM overrides it)."""
    path = os.environ.get("VAXVAULT_TEST_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    if not path or not os.access(path, os.X_OK):
        _missing("Chromium", "apt-get install chromium (Debian/Ubuntu), then run the tests again")
    assert path is not None
    return path


def npm() -> str:
    path = shutil.which("npm")
    if not path:
        _missing("npm", "apt-get install npm (Debian/Ubuntu), then run the tests again")
    assert path is not None
    return path


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """One installer at a time across the xdist workers."""
    NODE_CACHE.mkdir(parents=True, exist_ok=True)
    with (NODE_CACHE / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def graphiql_assets() -> None:
    """GraphiQL's pinned files in the directory the server serves, fetched when missing."""
    if not assets.missing(check_hashes=True):
        return
    command = npm()
    with _locked("assets"):
        try:
            assets.fetch(npm=command)
        except assets.AssetsError as exc:
            _missing("GraphiQL's files", f"{exc}")


def audit_modules() -> Path:
    """node_modules holding graphql-http's audit suite, installed when missing."""
    modules = NODE_CACHE / "node_modules"
    wanted = {spec.rsplit("@", 1)[0]: spec.rsplit("@", 1)[1] for spec in AUDIT_PACKAGES}
    if all(_installed_version(modules / name) == version for name, version in wanted.items()):
        return modules
    command = npm()
    with _locked("npm"):
        result = subprocess.run([command, "install", "--prefix", str(NODE_CACHE), "--no-audit",
                                 "--no-fund", "--silent", *AUDIT_PACKAGES],
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            _missing("graphql-http", f"npm install failed: {result.stderr.strip()[-300:]}")
    return modules


def _installed_version(package_dir: Path) -> str | None:
    manifest = package_dir / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text()).get("version"))
