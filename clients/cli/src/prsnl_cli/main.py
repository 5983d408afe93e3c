"""The ``prsnl`` commands: save, ls, show, get, retry, rm, watch and login."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click
from rich.console import Console
from rich.text import Text

from prsnl_cli import __version__, config
from prsnl_cli.api import Api, Item
from prsnl_cli.download import download
from prsnl_cli.errors import EXIT_CODE_HELP, ApiProblem, CliError, ExitCode, NetworkError
from prsnl_cli.progress import download_bar, wait_for_items
from prsnl_cli.render import item_details, items_table, label, parse_rate, update_text

STATUSES = ["pending", "downloading", "downloaded", "processing", "ready", "failed"]
F = TypeVar("F", bound=Callable[..., Any])
PIPE_WIDTH = 1000
# Markup off: titles, URLs and the API's "[code]" suffixes are printed as they are.
out = Console(highlight=False, markup=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, markup=False)
if not out.is_terminal:
    # Piped into grep, cut or a file: whole lines, never squeezed to 80 columns.
    out.width = PIPE_WIDTH


@dataclass
class Context:
    api_url: str | None
    api_key: str | None
    config_path: Path | None
    timeout: float

    def config(self) -> config.Config:
        env = {**os.environ, "PRSNL_API_KEY": self.api_key} if self.api_key else os.environ
        return config.load(env, self.api_url, self.config_path)

    def api(self) -> Api:
        settings = self.config()
        return Api(settings.api_url, settings.require_key(), self.timeout)


def json_option(function: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
    )(function)


def print_json(value: object) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def report(error: CliError, as_json: bool) -> None:
    """An error on stderr: the API's code and detail, or what went wrong locally."""
    if as_json:
        body = error.as_dict() if isinstance(error, ApiProblem) else {"detail": error.message}
        click.echo(json.dumps({"error": body}, ensure_ascii=False), err=True)
    else:
        err.print(Text.assemble(("error: ", "bold red"), error.message))


def run(
    coroutine: Coroutine[Any, Any, ExitCode], as_json: bool, interrupted: str = "Interrupted."
) -> None:
    """Run a command's body; its exit code, or the code of the error it raised."""
    try:
        code = asyncio.run(coroutine)
    except CliError as error:
        report(error, as_json)
        code = error.exit_code
    except KeyboardInterrupt:
        if interrupted:
            err.print(interrupted)
        code = ExitCode.INTERRUPTED
    sys.exit(int(code))


def path_id(item_id: str) -> str:
    """An id as one path segment (whatever is typed stays inside /items/...)."""
    return quote(item_id.strip(), safe="")


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODE_HELP,
)
@click.option(
    "--api-url",
    metavar="URL",
    help="Base URL of the API [PRSNL_API_URL, config file, http://127.0.0.1:8000].",
)
@click.option(
    "--api-key",
    metavar="KEY",
    help="API key [PRSNL_API_KEY, config file]; other users can see it in ps, prefer those.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file [PRSNL_CONFIG, $XDG_CONFIG_HOME/prsnl/config.toml].",
)
@click.option(
    "--timeout", default=30.0, show_default=True, type=click.FloatRange(min=1), help="Seconds."
)
@click.version_option(__version__, prog_name="prsnl")
@click.pass_context
def cli(
    ctx: click.Context,
    api_url: str | None,
    api_key: str | None,
    config_path: Path | None,
    timeout: float,
) -> None:
    """Save videos from links to your PRSNL Media, watch them progress and fetch them.

    The API key comes from PRSNL_API_KEY or the config file that 'prsnl login' writes.
    """
    ctx.obj = Context(api_url, api_key, config_path, timeout)


pass_context = click.make_pass_decorator(Context)


# --- login -------------------------------------------------------------------------------


@cli.command()
@click.option("--key", help="The API key (asked for, hidden, when not given).")
@json_option
@pass_context
def login(context: Context, key: str | None, as_json: bool) -> None:
    """Check an API key against the API and keep it, with the URL, in the config file.

    The file is written readable by you only (mode 0600).
    """
    run(_login(context, key, as_json), as_json)


async def _login(context: Context, key: str | None, as_json: bool) -> ExitCode:
    settings = context.config()
    key = (key or click.prompt("API key", hide_input=True)).strip()
    async with Api(settings.api_url, key, context.timeout) as api:
        await api.json("GET", "/api/v1/items", params={"limit": 1})
    config.write(settings.path, settings.api_url, key)
    if as_json:
        print_json({"api_url": settings.api_url, "config": str(settings.path)})
    else:
        out.print(f"Key for {settings.api_url} saved in {settings.path}.")
    return ExitCode.OK


# --- save and retry -----------------------------------------------------------------------


@cli.command()
@click.argument("urls", nargs=-1, required=True, metavar="URL...")
@click.option("--wait", "-w", is_flag=True, help="Show live progress and wait until done.")
@click.option(
    "--max-height", type=click.IntRange(144, 4320), help="Highest video height (e.g. 720)."
)
@click.option("--audio-only", is_flag=True, help="Keep only the audio.")
@json_option
@pass_context
def save(
    context: Context,
    urls: tuple[str, ...],
    wait: bool,
    max_height: int | None,
    audio_only: bool,
    as_json: bool,
) -> None:
    """Save the video behind each URL.

    Without --wait it prints each new item and returns at once; with --wait it shows a
    progress bar per link and ends when every item is ready or failed (exit 1 if one
    failed, 5 if a link was refused; when links end differently, the larger code).
    """
    run(_save(context, urls, wait, max_height, audio_only, as_json), as_json)


async def _save(
    context: Context,
    urls: tuple[str, ...],
    wait: bool,
    max_height: int | None,
    audio_only: bool,
    as_json: bool,
) -> ExitCode:
    results: list[Item] = []
    async with context.api() as api:
        for url in urls:
            results.append(await _capture(api, url, max_height, audio_only))
        accepted = [r for r in results if "id" in r]
        if wait and accepted:
            finals = iter(await wait_for_items(api, accepted, err))
            results = [next(finals) if "id" in r else r for r in results]
    _print_items(results, as_json, wait)
    return max((_outcome(r, wait) for r in results), default=ExitCode.OK)


async def _capture(api: Api, url: str, max_height: int | None, audio_only: bool) -> Item:
    """The captured (or already saved) item, or ``{"url", "error"}`` for a refused link."""
    try:
        return await api.capture(url, max_height, audio_only)
    except ApiProblem as problem:
        if problem.exit_code in (ExitCode.AUTH, ExitCode.NETWORK):
            raise  # nothing else will work either
        return {"url": url, "error": problem.as_dict()}


def _outcome(result: Item, waited: bool) -> ExitCode:
    if "id" not in result:
        return ApiProblem(**result["error"]).exit_code
    if waited and result.get("status") != "ready":
        return ExitCode.FAILED
    return ExitCode.OK


def _print_items(results: list[Item], as_json: bool, waited: bool) -> None:
    if as_json:
        print_json(results)
        return
    for result in results:
        if "id" not in result:
            error = result["error"]
            err.print(f"refused {result['url']}: {error['detail']} [{error['code']}]")
            continue
        twin = " (already saved)" if result.get("duplicate") else ""
        state = update_text("item", result) if waited else result["status"]
        out.print(f"{result['id']}  {state}{twin}  {label(result, 60)}")


@cli.command()
@click.argument("item_id", metavar="ID")
@click.option("--wait", "-w", is_flag=True, help="Show live progress and wait until done.")
@json_option
@pass_context
def retry(context: Context, item_id: str, wait: bool, as_json: bool) -> None:
    """Run a failed item again (exit 7 if it has not failed)."""
    run(_retry(context, item_id, wait, as_json), as_json)


async def _retry(context: Context, item_id: str, wait: bool, as_json: bool) -> ExitCode:
    async with context.api() as api:
        item = await api.retry(path_id(item_id))
        if wait:
            item = (await wait_for_items(api, [item], err))[0]
    _print_items([item], as_json, wait)
    return _outcome(item, wait)


# --- ls and show ---------------------------------------------------------------------------


@cli.command(name="ls")
@click.option("--status", type=click.Choice(STATUSES), help="Only items with this status.")
@click.option("--q", "text", metavar="TEXT", help="Words in title, uploader, description or URL.")
@click.option("--platform", metavar="P", help="Only this platform (youtube, instagram, ...).")
@click.option(
    "--limit",
    "-n",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="At most this many items, following the pages (0: all).",
)
@json_option
@pass_context
def list_items(
    context: Context,
    status: str | None,
    text: str | None,
    platform: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List your items, newest first."""
    run(_list(context, status, text, platform, limit, as_json), as_json)


async def _list(
    context: Context,
    status: str | None,
    text: str | None,
    platform: str | None,
    limit: int,
    as_json: bool,
) -> ExitCode:
    async with context.api() as api:
        filters = {"status": status, "q": text, "platform": platform}
        items = [item async for item in api.items(limit or None, **filters)]
    if as_json:
        print_json(items)
    elif items:
        out.print(items_table(items))
    else:
        err.print("No items.")
    return ExitCode.OK


@cli.command()
@click.argument("item_id", metavar="ID")
@json_option
@pass_context
def show(context: Context, item_id: str, as_json: bool) -> None:
    """Everything about one item."""
    run(_show(context, item_id, as_json), as_json)


async def _show(context: Context, item_id: str, as_json: bool) -> ExitCode:
    async with context.api() as api:
        item = await api.item(path_id(item_id))
    if as_json:
        print_json(item)
    else:
        out.print(item_details(item))
    return ExitCode.OK


# --- get -----------------------------------------------------------------------------------


@cli.command()
@click.argument("item_id", metavar="ID")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write [TITLE-ID.mp4 in the current folder].",
)
@click.option("--force", "-f", is_flag=True, help="Replace FILE if it exists.")
@click.option("--limit-rate", metavar="RATE", help="At most this many bytes/s (500k, 2M).")
@json_option
@pass_context
def get(
    context: Context,
    item_id: str,
    output: Path | None,
    force: bool,
    limit_rate: str | None,
    as_json: bool,
) -> None:
    """Download an item's video, with a progress bar.

    An interrupted download leaves FILE.part; the same command resumes it with a Range
    request, or starts again if the video changed since (its ETag differs).
    """
    try:
        rate = parse_rate(limit_rate) if limit_rate else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--limit-rate") from exc
    run(_get(context, item_id, output, force, rate, as_json), as_json, interrupted="")


async def _get(
    context: Context,
    item_id: str,
    output: Path | None,
    force: bool,
    rate: int | None,
    as_json: bool,
) -> ExitCode:
    async with context.api() as api:
        item = await api.item(path_id(item_id))
        target = output or Path(default_name(item))
        if target.exists() and not force:
            raise CliError(f"{target} exists; use --force to replace it.", ExitCode.USAGE)
        with download_bar(err) as bar:
            task = bar.add_task(target.name, total=None)

            def on_progress(done: int, size: int | None) -> None:
                bar.update(task, completed=done, total=size)

            try:
                result = await download(api, path_id(item_id), target, on_progress, rate)
            except asyncio.CancelledError:  # Ctrl-C
                err.print(f"Interrupted; {target}.part is kept: run the same command to resume.")
                raise
    facts = {"path": str(result.path), "size": result.size, "resumed_from": result.resumed_from}
    if as_json:
        print_json({**facts, "id": item["id"], "etag": result.etag})
    else:
        resumed = f", resumed at byte {result.resumed_from}" if result.resumed_from else ""
        out.print(f"Saved {result.path} ({result.size} bytes{resumed}).")
    return ExitCode.OK


def default_name(item: Item) -> str:
    """``<title>-<first 8 of id>.mp4``, the title reduced to letters, digits, - and _."""
    title = re.sub(r"[^\w-]+", "-", str(item.get("title") or ""), flags=re.ASCII).strip("-_")
    short = str(item["id"])[:8]
    return f"{title[:60]}-{short}.mp4" if title else f"{item['id']}.mp4"


# --- rm ------------------------------------------------------------------------------------


@cli.command()
@click.argument("item_ids", nargs=-1, required=True, metavar="ID...")
@json_option
@pass_context
def rm(context: Context, item_ids: tuple[str, ...], as_json: bool) -> None:
    """Delete items and their files."""
    run(_rm(context, item_ids, as_json), as_json)


async def _rm(context: Context, item_ids: tuple[str, ...], as_json: bool) -> ExitCode:
    results: list[dict[str, Any]] = []
    code = ExitCode.OK
    async with context.api() as api:
        for item_id in item_ids:
            try:
                await api.delete(path_id(item_id))
                results.append({"id": item_id, "deleted": True})
            except ApiProblem as problem:
                if problem.exit_code in (ExitCode.AUTH, ExitCode.NETWORK):
                    raise
                results.append({"id": item_id, "deleted": False, "error": problem.as_dict()})
                code = max(code, problem.exit_code)
    if as_json:
        print_json(results)
    for result in results if not as_json else []:
        if result["deleted"]:
            out.print(f"deleted {result['id']}")
        else:
            err.print(f"{result['id']}: {result['error']['detail']} [{result['error']['code']}]")
    return code


# --- watch ---------------------------------------------------------------------------------


@cli.command()
@json_option
@pass_context
def watch(context: Context, as_json: bool) -> None:
    """Follow live updates of all your items until Ctrl-C (one JSON object a line with --json).

    Reconnects by itself when the connection breaks.
    """
    try:
        run(_watch(context, as_json), as_json)
    except SystemExit as done:
        if done.code == ExitCode.INTERRUPTED:
            sys.exit(0)  # Ctrl-C is how watch ends
        raise


async def _watch(context: Context, as_json: bool) -> ExitCode:
    delay = 0.5
    async with context.api() as api:
        while True:
            try:
                async for event in api.events("/api/v1/items/events"):
                    delay = 0.5
                    _print_update(event.event, event.json(), as_json, api.base_url)
            except NetworkError as error:
                err.print(f"connection lost ({error.message}); reconnecting")
            except ApiProblem as problem:
                if problem.exit_code not in (ExitCode.NETWORK, ExitCode.LIMITED):
                    raise
                err.print(f"{problem.message}; trying again")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _print_update(kind: str, data: dict[str, Any], as_json: bool, base_url: str) -> None:
    if kind == "listening":
        err.print(f"watching {base_url} (Ctrl-C to stop)")
        return
    if as_json:
        click.echo(json.dumps({"event": kind, **data}, ensure_ascii=False))
        return
    moment = dt.datetime.now().strftime("%H:%M:%S")
    out.print(f"{moment}  {data.get('item_id', '')}  {update_text(kind, data)}")


def main() -> None:
    cli(prog_name="prsnl")
