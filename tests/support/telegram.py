"""A fake Telegram Bot API server on 127.0.0.1 that speaks the real HTTP protocol.

python-telegram-bot is pointed at it with ``base_url``/``base_file_url``
(``PRSNL_TELEGRAM_API_URL``). It implements what the gateway uses: getMe,
getUpdates with offsets and long polling, sendMessage, editMessageText,
editMessageReplyMarkup, sendVideo (multipart upload, the bytes recorded, or a
file_id already known), answerCallbackQuery, getFile and the file download
path, setWebhook/deleteWebhook. Tests play the users: :meth:`FakeBotApi.send_text`,
:meth:`send_video_file` and :meth:`press` queue updates as Telegram would.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.stack import Stack
from tests.support.waiting import eventually

CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024
_URL = re.compile(r"https?://\S+")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def url_entities(text: str) -> list[dict[str, Any]]:
    """The ``url`` entities Telegram attaches to a text (offsets in UTF-16 code units)."""
    return [
        {
            "type": "url",
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group()),
        }
        for match in _URL.finditer(text)
    ]


@dataclass
class Sent:
    """One message the bot sent (and what became of it)."""

    method: str
    chat_id: int
    message_id: int
    text: str | None = None
    caption: str | None = None
    reply_to: int | None = None
    reply_markup: dict[str, Any] | None = None
    video: bytes | None = None
    video_file_id: str | None = None
    thumbnail: bytes | None = None
    params: dict[str, Any] = field(default_factory=dict)
    edits: list[str] = field(default_factory=list)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [button for row in rows for button in row]


class FakeBotApi:
    def __init__(
        self,
        token: str,
        *,
        local_mode: bool = False,
        host: str = "127.0.0.1",
        first_update_id: int = 1,
        first_message_id: int = 1000,
    ) -> None:
        self.token = token
        self.bot_id = int(
            token.split(":", maxsplit=1)[0]
        )  # as Telegram's tokens start with the bot id
        self.local_mode = local_mode
        self.host = host
        self._lock = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(first_update_id)
        self._message_ids = itertools.count(first_message_id)
        self.sent: list[Sent] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.webhook: dict[str, Any] = {}
        self.requests: list[tuple[str, str]] = []  # (method, raw path) of every call
        self.fail_next: dict[str, int] = {}  # method -> how many calls answer 429
        self.get_updates_offsets: list[int | None] = []
        self._server: ThreadingHTTPServer | None = None
        self._disk = Path(tempfile.mkdtemp(prefix="fake-bot-api-"))  # a local server's disk

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> FakeBotApi:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = _Server((self.host, 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        with self._lock:
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._disk, ignore_errors=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    # -- playing the users ----------------------------------------------------------------

    def _queue(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            update = {"update_id": next(self._update_ids), kind: payload}
            self._updates.append(update)
            self._lock.notify_all()
        return update

    def new_message(self, user_id: int, chat_id: int | None = None) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id or user_id, "type": "private", "first_name": f"u{user_id}"},
            "from": {"id": user_id, "is_bot": False, "first_name": f"u{user_id}"},
        }

    def send_text(
        self, user_id: int, text: str, *, entities: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """A user writes to the bot; Telegram marks links (and commands) as entities."""
        message = self.new_message(user_id)
        message["text"] = text
        found = url_entities(text) if entities is None else entities
        if text.startswith("/"):
            found = [{"type": "bot_command", "offset": 0, "length": len(text.split(maxsplit=1)[0])}]
        if found:
            message["entities"] = found
        return self._queue("message", message)

    def send_raw(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._queue(kind, payload)

    def send_video_file(
        self, user_id: int, data: bytes, *, as_kind: str = "video", mime: str = "video/mp4"
    ) -> dict[str, Any]:
        """A user sends a file; the bot gets its file_id and size, as from Telegram."""
        file_id = f"upl-{uuid.uuid4().hex}"
        self.files[file_id] = data
        message = self.new_message(user_id)
        media: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": file_id[-12:],
            "file_size": len(data),
        }
        if as_kind == "document":
            media.update(mime_type=mime, file_name="clip.mp4")
        else:
            media.update(width=640, height=360, duration=3, mime_type=mime)
        message[as_kind] = media
        return self._queue("message", message)

    def press(self, user_id: int, sent: Sent, data: str) -> dict[str, Any]:
        """A user presses an inline button under a message of the bot."""
        message = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": {"id": sent.chat_id, "type": "private", "first_name": f"u{user_id}"},
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "prsnl"},
            "text": sent.text or sent.caption or "",
        }
        query = {
            "id": uuid.uuid4().hex,
            "from": {"id": user_id, "is_bot": False, "first_name": f"u{user_id}"},
            "message": message,
            "chat_instance": "1",
            "data": data,
        }
        return self._queue("callback_query", query)

    # -- what the bot did -----------------------------------------------------------------

    def sent_to(self, chat_id: int) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.chat_id == chat_id]

    def replies_to(self, chat_id: int, message_id: int) -> list[Sent]:
        return [s for s in self.sent_to(chat_id) if s.reply_to == message_id]

    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    def calls(self, method: str) -> int:
        with self._lock:
            return sum(1 for m, _ in self.requests if m == method)

    # -- the protocol ---------------------------------------------------------------------

    def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((method, ""))
            if self.fail_next.get(method):
                self.fail_next[method] -= 1
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1},
                }
        handler = getattr(self, f"_do_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            return 200, {"ok": True, "result": handler(params)}
        except _ApiError as exc:
            return exc.code, {"ok": False, "error_code": exc.code, "description": exc.text}

    def _do_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "prsnl",
            "username": "prsnl_test_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _do_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params["offset"]) if params.get("offset") is not None else None
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._lock:
            self.get_updates_offsets.append(offset)
            if offset is not None:  # confirms every update before the offset
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._lock.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            return list(self._updates[:limit])

    def _new_sent(self, method: str, params: dict[str, Any], **fields: Any) -> Sent:
        chat_id = int(params["chat_id"])
        reply = params.get("reply_to_message_id") or (params.get("reply_parameters") or {}).get(
            "message_id"
        )
        sent = Sent(
            method=method,
            chat_id=chat_id,
            message_id=next(self._message_ids),
            reply_to=int(reply) if reply else None,
            reply_markup=params.get("reply_markup"),
            params={k: v for k, v in params.items() if not isinstance(v, bytes)},
            **fields,
        )
        with self._lock:
            self.sent.append(sent)
            self._lock.notify_all()
        return sent

    def _message_of(self, sent: Sent) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": {"id": sent.chat_id, "type": "private"},
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "prsnl"},
        }
        if sent.text is not None:
            message["text"] = sent.text
        if sent.caption is not None:
            message["caption"] = sent.caption
        if sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        return message

    def _do_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        if not str(params.get("text") or "").strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        return self._message_of(self._new_sent("sendMessage", params, text=str(params["text"])))

    def _do_sendVideo(self, params: dict[str, Any]) -> dict[str, Any]:
        video = params.get("video")
        if isinstance(video, bytes):
            file_id = f"vid-{uuid.uuid4().hex}"
            self.files[file_id] = video
            data: bytes | None = video
        elif isinstance(video, str) and video in self.files:
            file_id, data = video, None
        else:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        thumbnail = params.get("thumbnail")
        sent = self._new_sent(
            "sendVideo",
            params,
            caption=params.get("caption"),
            video=data,
            video_file_id=file_id,
            thumbnail=thumbnail if isinstance(thumbnail, bytes) else None,
        )
        message = self._message_of(sent)
        message["video"] = {
            "file_id": file_id,
            "file_unique_id": file_id[-12:],
            "width": int(params.get("width") or 0),
            "height": int(params.get("height") or 0),
            "duration": int(params.get("duration") or 0),
            "file_size": len(self.files[file_id]),
        }
        return message

    def _find(self, params: dict[str, Any]) -> Sent:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        for sent in self.sent:
            if sent.chat_id == chat_id and sent.message_id == message_id:
                return sent
        raise _ApiError(400, "Bad Request: message to edit not found")

    def _do_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            sent = self._find(params)
            text = str(params["text"])
            if text == (sent.edits[-1] if sent.edits else sent.text):
                raise _ApiError(400, "Bad Request: message is not modified")
            sent.edits.append(text)
            if "reply_markup" in params:
                sent.reply_markup = params["reply_markup"]
            self._lock.notify_all()
        return self._message_of(sent)

    def _do_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            sent = self._find(params)
            sent.reply_markup = params.get("reply_markup")
        return self._message_of(sent)

    def _do_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        with self._lock:
            self.callback_answers.append(params)
        return True

    def _do_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params["file_id"])
        if file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        size = len(self.files[file_id])
        path = f"videos/{file_id}.mp4"
        if self.local_mode:  # a local server answers with the file's path on its own disk
            local = self._disk / path
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(self.files[file_id])
            path = str(local)
        elif size > CLOUD_DOWNLOAD_LIMIT:
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": file_id[-12:],
            "file_size": size,
            "file_path": path,
        }

    def _do_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {"url": params.get("url"), "secret_token": params.get("secret_token")}
        return True

    def _do_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {}
        return True

    def _do_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.webhook.get("url") or "", "pending_update_count": 0}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A long poll the client gave up on (it stopped, or was killed) is no error."""


class _ApiError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class _Handler(BaseHTTPRequestHandler):
    api: FakeBotApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        bot_prefix, file_prefix = f"/bot{self.api.token}/", f"/file/bot{self.api.token}/"
        if path.startswith(file_prefix):
            self._serve_file(path[len(file_prefix) :])
            return
        if not path.startswith(bot_prefix):
            self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        status, body = self.api.handle(path[len(bot_prefix) :], self._params())
        self._reply(status, body)

    def _params(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        kind = self.headers.get("Content-Type", "")
        params: dict[str, Any] = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if kind.startswith("application/json") and raw:
            params.update(json.loads(raw))
        elif kind.startswith("application/x-www-form-urlencoded"):
            params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        elif kind.startswith("multipart/form-data"):
            params.update(_multipart(kind, raw))
        return {k: _decoded(v) for k, v in params.items()}

    def _serve_file(self, file_path: str) -> None:
        file_id = file_path.rsplit("/", 1)[-1].removesuffix(".mp4")
        data = self.api.files.get(file_id)
        if data is None:
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw, policy=email.policy.HTTP
    )
    fields: dict[str, Any] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        fields[str(name)] = payload if part.get_filename() else payload.decode()
    for name, value in list(fields.items()):  # "attach://x" points at the part named x
        if isinstance(value, str) and value.startswith("attach://"):
            fields[name] = fields.get(value.removeprefix("attach://"), value)
    return fields


def _decoded(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


TOKEN = "7000000001:AAE-prsnl-test-token-9f8e7d6c5b4a3210"
ALICE = 111_111


def gateway_env(
    bot_api: FakeBotApi, stack: Stack, users: dict[int, str], **extra: str
) -> dict[str, str]:
    return {
        "PRSNL_TELEGRAM_BOT_TOKEN": bot_api.token,
        "PRSNL_TELEGRAM_USERS": ", ".join(f"{uid}={key}" for uid, key in users.items()),
        "PRSNL_TELEGRAM_GATEWAY_URL": stack.base_url,
        "PRSNL_TELEGRAM_API_URL": bot_api.url,
        "PRSNL_TELEGRAM_POLL_TIMEOUT": "1",
        "PRSNL_TELEGRAM_EDIT_INTERVAL_SECONDS": "0.5",
        "PRSNL_TELEGRAM_LEADER_RETRY_SECONDS": "0.5",
        "PRSNL_LOG_LEVEL": "DEBUG",  # the most a log could say about the token
        **extra,
    }


def replies(bot_api: FakeBotApi, update: dict[str, Any]) -> list[Sent]:
    message = update["message"]
    return bot_api.replies_to(message["chat"]["id"], message["message_id"])


async def reply_where(
    bot_api: FakeBotApi, update: dict[str, Any], check: Any, within: float = 120, what: str = ""
) -> Sent:
    found: list[Sent] = []

    def seen() -> bool:
        found[:] = [s for s in replies(bot_api, update) if check(s)]
        return bool(found)

    await eventually(seen, within, what or "a reply")
    return found[0]


def video(sent: Sent) -> bool:
    return sent.method == "sendVideo"
