"""Live progress bars: one per item while it is saved, one for a download."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from prsnl_cli.api import Api, Item, follow
from prsnl_cli.render import label, progress_fields, update_text

# Live streams one `save --wait` holds open at once; the gateway allows 20 per owner
# and replica by default, and the page or `watch` of the same owner may hold some.
MAX_STREAMS = 8


def item_bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.fields[label]}", markup=False),
        BarColumn(bar_width=24),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}", markup=False),
        console=console,
        transient=False,
    )


def download_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


async def wait_for_items(api: Api, items: list[Item], console: Console) -> list[Item]:
    """Follow each item's live stream until it is ready, failed or deleted; the final items."""
    streams = asyncio.Semaphore(MAX_STREAMS)
    with item_bars(console) as bars:

        async def one(item: Item) -> Item:
            task = bars.add_task("", total=1.0, label=label(item, 36), state=item["status"])
            async with streams:
                return await _follow_one(api, item, bars, task)

        return list(await asyncio.gather(*(one(item) for item in items)))


async def _follow_one(api: Api, item: Item, bars: Progress, task: TaskID) -> Item:
    async for kind, data in follow(api, str(item["id"])):
        if kind == "deleted":
            bars.update(task, state="deleted")
            return {**item, "status": "deleted"}
        if kind == "item":
            bars.update(task, label=label(data, 36))
        bars.update(task, state=update_text(kind, data, percent=False), completed=_completion(data))
    final = await api.item(str(item["id"]))
    bars.update(task, state=update_text("item", final), label=label(final, 36))
    return final


def _completion(data: dict[str, Any]) -> float | None:
    """The bar's position for an update: a stage's fraction, full when ready (None: as it is)."""
    if data.get("status") == "ready":
        return 1.0
    fraction, _ = progress_fields(data.get("progress"))
    return fraction
