"""Killing a command-line process at a known point of its run, not after a random delay."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


async def kill_when(command: list[str], env: dict[str, str], reached: Callable[[], Awaitable[bool]],
                    what: str) -> int:
    """Start `command`, SIGKILL it as soon as `reached()` is true (the test holds the process
    there, e.g. by a lock it waits on); its return code. Fails if it exits before `what`."""
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(120):  # a bound on a hang, not a measurement
            while not await reached():
                assert process.returncode is None, f"it exited {process.returncode} before {what}"
                await asyncio.sleep(0.05)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()
    return process.returncode
