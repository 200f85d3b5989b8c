"""The suite's own guard: every test can fail, and no test waits on the wall clock.

A test function must assert, expect an exception (`pytest.raises`/`pytest.warns`), or call a
check that does (a helper named `assert_*`/`check_*`, or a function of the same module whose body
asserts). `time.sleep` is refused anywhere under tests/ except where SLEEP_ALLOWED says why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# path (relative to tests/) -> why a real sleep is the behaviour under test there
SLEEP_ALLOWED = {
    "faulty_proxy.py": "latency is the fault the proxy injects, in its own server thread",
}
CHECK_PREFIXES = ("assert_", "check_")
EXPECTING = {"raises", "warns", "deprecated_call"}


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _asserts_directly(node: ast.AST, checking: set[str]) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Assert):
            return True
        if isinstance(child, ast.Call):
            name = _called_name(child)
            if name in EXPECTING or name.startswith(CHECK_PREFIXES) or name in checking:
                return True
    return False


def _checking_functions(tree: ast.Module) -> set[str]:
    """Names of this module's functions that assert, directly or through one another."""
    functions = {n.name: n for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    checking: set[str] = set()
    while True:
        more = {name for name, f in functions.items()
                if name not in checking and _asserts_directly(f, checking)}
        if not more:
            return checking
        checking |= more


def toothless_tests(source: str) -> list[str]:
    """Test functions in `source` that can never fail."""
    tree = ast.parse(source)
    checking = _checking_functions(tree)
    return [node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_") and not _asserts_directly(node, checking - {node.name})]


def sleeps(source: str) -> list[int]:
    """Lines of `source` that call time.sleep or import it by name."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "sleep" and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == "time":
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "time" \
                and any(alias.name == "sleep" for alias in node.names):
            lines.append(node.lineno)
    return lines


def _sources() -> Iterator[tuple[str, str]]:
    for path in sorted(TESTS.rglob("*.py")):
        yield path.relative_to(TESTS).as_posix(), path.read_text()


def test_every_test_can_fail() -> None:
    toothless = [f"{name}::{test}" for name, source in _sources() if Path(name).name.startswith("test_")
                 for test in toothless_tests(source)]
    assert toothless == [], "tests with no assertion or expected exception: " + ", ".join(toothless)


def test_no_test_sleeps_on_the_wall_clock() -> None:
    found = [f"{name}:{line}" for name, source in _sources() if name not in SLEEP_ALLOWED
             for line in sleeps(source)]
    assert found == [], ("time.sleep in tests (inject a clock, or wait for a state with a "
                         "timeout; else add the file to SLEEP_ALLOWED with why): " + ", ".join(found))
    assert all(reason.strip() for reason in SLEEP_ALLOWED.values())
    assert all((TESTS / name).exists() for name in SLEEP_ALLOWED), "stale SLEEP_ALLOWED entry"


def test_the_guard_sees_what_it_guards() -> None:
    sample = '''
import time
from time import sleep
import pytest

def check_rows(rows):
    assert rows

def _fetch():
    return 1

def test_nothing():
    _fetch()

def test_asserts():
    assert _fetch() == 1

def test_expects():
    with pytest.raises(ValueError):
        int("x")

def test_through_a_helper():
    check_rows([1])

async def test_sleeps():
    time.sleep(1)
'''
    assert toothless_tests(sample) == ["test_nothing", "test_sleeps"]
    assert sleeps(sample) == [3, 26]
