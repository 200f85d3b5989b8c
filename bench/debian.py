"""Tools the bench drives from outside Python, installed from Debian when missing (like
PostGraphile from npm): wrk, pgBackRest and GNU time."""

from __future__ import annotations

import shutil
import subprocess

from bench.progress import say


class ToolMissing(Exception):
    """A tool is not on PATH and apt-get could not install it."""


def ensure(command: str, package: str | None = None) -> str:
    """The path of `command`, installing Debian's `package` (default: the command's name) first
    when it is missing; raises ToolMissing when apt-get cannot provide it."""
    found = shutil.which(command)
    if found:
        return found
    package = package or command
    say(f"installing {package} from Debian (apt-get update && apt-get install -y {package})")
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ToolMissing(f"{command} is not installed and apt-get could not install {package}: "
                          f"{exc}") from exc
    found = shutil.which(command)
    if not found:
        raise ToolMissing(f"{command} is not installed and apt-get's {package} did not provide it")
    return found
