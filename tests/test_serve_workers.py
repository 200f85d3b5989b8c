"""`vaxvault serve` runs one worker per core in production unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.cli import main
from api.cli.serve import default_workers
from api.settings import Settings


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
