"""graphql-http's server audit suite (npm, the reference for the GraphQL-over-HTTP spec) against
`vaxvault serve`: every MUST and every SHOULD holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.settings import Settings
from tests.browser import tools

pytestmark = pytest.mark.slow

AUDIT_SCRIPT = Path(__file__).with_name("graphql_http_audit.cjs")


def test_graphql_http_audit_has_no_error_and_no_warning(settings: Settings, serve: Any) -> None:
    modules = tools.audit_modules()
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing though npm is installed; apt-get install nodejs")
    api = serve(settings)
    run = subprocess.run([node, str(AUDIT_SCRIPT), f"{api.url}/graphql"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "NODE_PATH": str(modules)})
    assert run.returncode == 0, run.stderr
    audits = json.loads(run.stdout)
    assert len(audits) >= 61, "the suite shrank: check the pinned graphql-http version"
    assert {a["status"] for a in audits} <= {"ok", "notice", "warn", "error"}
    failing = [f"{a['status']}: {a['name']} ({a['reason']})" for a in audits
               if a["status"] in ("warn", "error")]
    assert failing == []
