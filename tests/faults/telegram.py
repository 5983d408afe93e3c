"""Links sent to the Telegram bot during a fault, and the one final answer each must get.

The bot is the real Telegram gateway polling a fake Bot API on loopback. A
final answer is the video, the too-big link or the failure with its code (any
reply that is not the "Saving…" status message); a link without one is lost,
a link with two is duplicated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.support.telegram import FakeBotApi, Sent

TELEGRAM_USER = 424_242


def final(sent: Sent) -> bool:
    return sent.method == "sendVideo" or (
        sent.method == "sendMessage" and not (sent.text or "").startswith("Saving")
    )


@dataclass
class TelegramLoad:
    bot_api: FakeBotApi
    media_url: str
    tag: str
    total: int
    sent: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    def send_all(self) -> None:
        for index in range(self.total):
            url = f"{self.media_url}/files/clip.mp4?tg={self.tag}-{index}"
            self.sent.append((self.bot_api.send_text(TELEGRAM_USER, url), url))

    def answers(self) -> Counter[int]:
        """Final answers per link message, by message id."""
        counts: Counter[int] = Counter()
        for update, _ in self.sent:
            message = update["message"]
            replies = self.bot_api.replies_to(message["chat"]["id"], message["message_id"])
            counts[message["message_id"]] = sum(1 for reply in replies if final(reply))
        return counts

    def all_answered(self) -> bool:
        answers = self.answers()
        return all(answers[update["message"]["message_id"]] for update, _ in self.sent)

    def urls(self) -> set[str]:
        return {url for _, url in self.sent}
