"""The `vaxvault` command through its entry point, and `vaxvault dev` as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from api.cli import main
from tests.conftest import JWT_SECRET
from tests.sockets import listening_socket, refusing_port


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("VAXVAULT_") and not name.startswith("VAXVAULT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VAXVAULT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VAXVAULT_JWT_SECRET", JWT_SECRET)
    return monkeypatch


def test_migrate_and_seed_through_the_cli(env: pytest.MonkeyPatch, empty_database_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("VAXVAULT_DATABASE_URL", empty_database_url)
    assert main(["db", "migrate", "--json"]) == 0
    applied = json.loads(capsys.readouterr().out)["applied"]
    assert applied[0] == "0001_registry"
    assert main(["db", "migrate"]) == 0
    assert capsys.readouterr().out.strip() == "applied 0 migration(s)"
    assert main(["db", "seed", "--recipients", "50", "--seed", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["recipients"] == 50 and result["doses"] > 50
    assert main(["db", "seed", "--recipients", "50"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--replace" in err


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["db"], ["db", "seed"],
                                  ["db", "seed", "--recipients", "-5"],
                                  ["token", "--role", "king"]])
def test_bad_usage_exits_2(env: pytest.MonkeyPatch, argv: list[str],
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_failures_exit_1_with_one_line(env: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "migrate"]) == 1
    assert capsys.readouterr().err == (
        "vaxvault: VAXVAULT_DATABASE_URL is not set; set it to a postgresql:// URL or use "
        "'vaxvault dev' for the embedded database\n")
    with refusing_port() as port:
        env.setenv("VAXVAULT_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{port}/x")
        assert main(["db", "migrate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vaxvault: cannot connect to PostgreSQL at 127.0.0.1:")
    assert err.count("\n") == 1
    env.setenv("VAXVAULT_ENV", "testing")
    assert main(["db", "migrate"]) == 1
    assert "VAXVAULT_ENV='testing'" in capsys.readouterr().err


def test_token_command(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--role", "center_staff", "--center-id", "4", "--json"]) == 0
    token = json.loads(capsys.readouterr().out)["token"]
    from api.auth import TokenVerifier
    from api.settings import load_settings

    principal = TokenVerifier(load_settings()).verify(f"Bearer {token}")
    assert principal.center_id == 4
    assert main(["token", "--role", "center_staff"]) == 1
    assert "needs a center_id" in capsys.readouterr().err


def test_dev_serves_and_stops_cleanly() -> None:
    """The README's run command, minus the install: embedded PostgreSQL, seed, serve, Ctrl-C."""
    # A directory of our own under /tmp: the server runs as another user, and pytest's tmp_path
    # tree is cleaned by concurrent pytest runs on a shared machine.
    with tempfile.TemporaryDirectory(prefix="vaxvault-dev-test-") as root:
        _run_dev(Path(root))


def _run_dev(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAXVAULT_")}
    env["VAXVAULT_STATE_DIR"] = str(tmp_path / "state")
    with listening_socket() as sock:
        command = [sys.executable, "-c", "from api.cli import run; run()", "dev",
                   "--fd", str(sock.fileno()), "--recipients", "300"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, pass_fds=(sock.fileno(),))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        # The socket listens from the start: the request waits in its backlog while dev starts
        # PostgreSQL and seeds, and is answered once it serves (the timeout bounds a hang).
        assert httpx.get(f"{url}/readyz", timeout=120).status_code == 200
        token = (tmp_path / "state" / "jwt-secret").read_text()
        assert token
        response = httpx.post(f"{url}/graphql", json={"query": "{ districts { name } }"})
        assert len(response.json()["data"]["districts"]) == 64
        # A second terminal, no settings: commands find the dev database and repository.
        for argv in (["db", "migrate", "--json"], ["backup", "init", "--json"],
                     ["backup", "run", "--full", "--json"]):
            beside = subprocess.run([*command[:3], *argv], env=env, capture_output=True,
                                    text=True, timeout=120, check=False)
            assert beside.returncode == 0, (argv, beside.stderr)
        assert json.loads(beside.stdout)
        assert any((tmp_path / "state" / "backups").rglob("*manifest*"))
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "seeded 300 demo recipients" in output
    assert "Authorization: Bearer ey" in output
    assert "embedded PostgreSQL stopped" in output
    assert not (tmp_path / "state" / "postgres" / "data" / "postmaster.pid").exists()


