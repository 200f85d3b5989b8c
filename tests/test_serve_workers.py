"""`vaxvault serve` runs one worker per core in production unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.cli import main
from api.cli.serve import default_workers
from api.settings import Settings
from tests.reliability.served import served


def _workers(pid: int) -> int:
    """The worker processes uvicorn's supervisor at pid has spawned (not its resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    commands = [Path(f"/proc/{child}/cmdline").read_bytes() for child in children]
    return sum(b"spawn_main" in command for command in commands)


def test_production_defaults_to_one_worker_per_usable_core(tmp_path: Path) -> None:
    production = Settings(env="production", jwt_secret="x" * 40, state_dir=tmp_path)
    development = Settings(env="development", state_dir=tmp_path)
    assert default_workers(production) == len(os.sched_getaffinity(0))
    assert default_workers(development) == 1


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_a_bad_worker_count_is_a_usage_error(workers: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", workers]) == 2
    assert workers in capsys.readouterr().err


def test_serve_in_production_starts_one_worker_per_usable_core(seeded_settings: Settings,
                                                                tmp_path: Path) -> None:
    """Through the entry point: `vaxvault serve` without --workers, as production runs it."""
    cores = len(os.sched_getaffinity(0))
    with served(seeded_settings.with_overrides(env="production"), tmp_path / "prod.log",
                workers=None) as api:
        assert _workers(api.pid) == (cores if cores > 1 else 0)
    with served(seeded_settings, tmp_path / "dev.log", workers=None) as api:
        assert _workers(api.pid) == 0  # development: one process serves, no supervisor
