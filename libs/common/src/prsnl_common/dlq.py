"""Inspect and replay a stage's dead-letter queue (operator tool).

    python -m prsnl_common.dlq list                 # depth of every DLQ of the namespace
    python -m prsnl_common.dlq show downloader      # peek at messages, with why they died
    python -m prsnl_common.dlq replay downloader    # send them back to the queue they came from

Replayed messages start again at attempt 1 and go straight to the queue they
died in (through the default exchange), so no other consumer sees them twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aio_pika

from prsnl_common.broker import ATTEMPT_HEADER, SUBSCRIPTIONS, TIER_HEADER, Topology
from prsnl_common.settings import CommonSettings


def death_of(headers: dict[str, Any]) -> tuple[str | None, str | None]:
    """The queue a dead letter came from and why (rejected, delivery_limit, expired)."""
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths, list):
        first = deaths[0]  # the most recent death comes first
        return _text(first.get("queue")), _text(first.get("reason"))
    return _text(headers.get("x-first-death-queue")), _text(headers.get("x-first-death-reason"))


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)


async def depths(settings: CommonSettings) -> dict[str, int]:
    topology = Topology(settings)
    connection = await aio_pika.connect(settings.rabbitmq_url)
    result: dict[str, int] = {}
    async with connection:
        for service in SUBSCRIPTIONS:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(topology.dlq_name(service), passive=True)
            except aio_pika.exceptions.ChannelClosed:
                continue
            result[service] = int(queue.declaration_result.message_count or 0)
    return result


async def show(settings: CommonSettings, service: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` messages of the DLQ, left in place."""
    topology = Topology(settings)
    connection = await aio_pika.connect(settings.rabbitmq_url)
    shown: list[dict[str, Any]] = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.dlq_name(service), passive=True)
        held: list[aio_pika.abc.AbstractIncomingMessage] = []
        while len(held) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            origin, reason = death_of(dict(message.headers))
            shown.append(
                {"from": origin, "reason": reason, "body": message.body.decode(errors="replace")}
            )
        for message in held:
            await message.nack(requeue=True)
    return shown


async def replay(settings: CommonSettings, service: str, limit: int | None = None) -> int:
    """Move messages back to the queues they died in; returns how many."""
    topology = Topology(settings)
    connection = await aio_pika.connect(settings.rabbitmq_url)
    moved = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(topology.dlq_name(service), passive=True)
        while limit is None or moved < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = {
                k: v
                for k, v in dict(message.headers).items()
                if not k.startswith("x-") and k not in (ATTEMPT_HEADER, TIER_HEADER)
            }
            origin, _ = death_of(dict(message.headers))
            if not origin:
                await message.nack(requeue=True)
                raise RuntimeError("a dead letter without x-death; leaving it in place")
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers=headers,
                    content_type=message.content_type,
                    message_id=message.message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=origin,
                mandatory=True,
            )
            await message.ack()
            moved += 1
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prsnl_common.dlq",
        description=__doc__.splitlines()[0],
        epilog="Uses PRSNL_RABBITMQ_URL and PRSNL_NAMESPACE.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="depth of each stage's dead-letter queue")
    for name, text in (
        ("show", "print messages without removing them"),
        ("replay", "send messages back to the queue they died in"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("service", choices=sorted(SUBSCRIPTIONS))
        command.add_argument("--limit", type=int, default=20 if name == "show" else None)
    args = parser.parse_args(argv)
    settings = CommonSettings()
    if args.command == "list":
        for service, depth in asyncio.run(depths(settings)).items():
            print(f"{Topology(settings).dlq_name(service):45} {depth}")
    elif args.command == "show":
        for entry in asyncio.run(show(settings, args.service, args.limit)):
            print(json.dumps(entry, ensure_ascii=False))
    else:
        moved = asyncio.run(replay(settings, args.service, args.limit))
        print(f"replayed {moved} message(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
