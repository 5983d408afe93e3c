"""Waiting on a condition with a deadline, the one way tests wait (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Check = Callable[[], bool | Awaitable[bool]]


async def eventually(check: Check, within: float = 10.0, what: str = "condition") -> None:
    """Return once ``check()`` (plain or async) is true; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {within:g} s")
        await asyncio.sleep(0.05)


def wait_until(check: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """The blocking form of :func:`eventually`, for fixtures that start processes."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within:g} s")
        time.sleep(0.05)
