"""Links in a Telegram message: text and caption, URL and text-link entities, in order.

Telegram marks the links it recognises as entities (also in forwarded
messages and album captions); a bare ``http(s)://`` in text without entities
(a client that sent none) is found by pattern. Duplicates keep their first place.
"""

from __future__ import annotations

import re

from telegram import Message, MessageEntity

MAX_TEXT = 8192  # Telegram's own limit is 4096 characters; longer is not a real message
_BARE = re.compile(r"https?://[^\s<>\"'\u00a0]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}\u2026"
_KINDS: list[str | None] = [MessageEntity.URL, MessageEntity.TEXT_LINK]


def links_in(message: Message) -> list[str]:
    found: list[str] = []
    for text, entities in (
        (message.text, message.parse_entities(_KINDS) if message.text else {}),
        (message.caption, message.parse_caption_entities(_KINDS) if message.caption else {}),
    ):
        if not text:
            continue
        if entities:
            found += [_entity_link(entity, value) for entity, value in entities.items()]
        else:
            found += [match.rstrip(_TRAILING) for match in _BARE.findall(text[:MAX_TEXT])]
    return list(dict.fromkeys(link for link in found if link))


def _entity_link(entity: MessageEntity, value: str) -> str:
    link = entity.url if entity.type == MessageEntity.TEXT_LINK and entity.url else value
    link = link.strip()
    if link and "://" not in link:
        link = f"https://{link}"  # Telegram marks "youtu.be/x" as a link too
    return link
