"""The web page in a real browser (Debian's Chromium through Playwright) against every service
running as its own process: sign in, save links, live progress, play and seek on the signed
link, re-transcode, a failure's reason and Retry, search, status filter and "load more",
delete, phone width and keyboard; screenshots of the list and the item page are kept."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Request, expect

from tests.support.browser import chromium
from tests.support.media_server import MediaServer
from tests.support.stack import Api, Stack

pytestmark = pytest.mark.e2e

PIPELINE_MS = 90_000  # a capture seen through to ready or failed in the page
PAGE_MS = 10_000  # the page answering an action
PAGE_SIZE = 20  # items per page of the web list (app.js)
CSP_LOG = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (event) => window.__csp.push(`${event.violatedDirective} ${event.blockedURI}`));
"""


@dataclass
class Web:
    """A browser tab on the stack's page, signed in as a fresh owner of its own."""

    page: Page
    stack: Stack
    api: Api
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def sign_in(self) -> None:
        self.page.goto(f"{self.stack.base_url}/")
        key = self.page.get_by_label("API key")
        expect(key).to_be_focused()
        key.fill(self.api.key)
        key.press("Enter")
        expect(self.page.locator("#library")).to_be_visible()

    def save(self, *links: str) -> Locator:
        self.page.get_by_label("Links", exact=False).fill("\n".join(links))
        self.page.get_by_role("button", name="Save", exact=True).click()
        results = self.page.locator("#capture-results li")
        expect(results).to_have_count(len(links), timeout=PAGE_MS)
        return results

    def card(self, item_id: str) -> Locator:
        return self.page.locator(f'#items .card[data-id="{item_id}"]')

    def newest_card_id(self) -> str:
        card = self.page.locator("#items .card").first
        expect(card).to_be_visible()
        item_id = card.get_attribute("data-id")
        assert item_id
        return item_id

    def video(self, script: str) -> Any:
        return self.page.evaluate(f"(v) => {script}", self.page.locator("#player").element_handle())

    def keys_in_urls(self) -> list[str]:
        return [r.url for r in self.requests if self.api.key in r.url]

    def no_scrolling_sideways(self) -> None:
        width = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"page is {width[0]} px wide in a {width[1]} px window"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def web(browser: Browser, stack: Stack) -> Iterator[Web]:
    yield from _tab(browser, stack, stack.client(stack.create_key(f"web-{uuid.uuid4().hex[:8]}")))


@pytest.fixture
def anonymous(browser: Browser, stack: Stack) -> Iterator[Web]:
    """A tab for what needs no owner (the page's own code)."""
    yield from _tab(browser, stack, Api(stack.base_url, f"no-key-{uuid.uuid4().hex}"))


def _tab(browser: Browser, stack: Stack, owner: Api) -> Iterator[Web]:
    """A fresh browser context; afterwards no CSP violation, no uncaught error, no key in a URL."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(CSP_LOG)
    page = context.new_page()
    page.set_default_timeout(PAGE_MS)
    web = Web(page, stack, owner)
    # Playwright cannot take a builtin method as a handler.
    page.on("request", lambda request: web.requests.append(request))  # noqa: PLW0108
    page.on("pageerror", lambda error: web.errors.append(f"uncaught: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            web.errors.append(message.text)

    page.on("console", on_console)
    try:
        yield web
        violations = page.evaluate("window.__csp || []") if not page.is_closed() else []
        assert violations == [], violations
        assert web.errors == []
        assert web.keys_in_urls() == []
    finally:
        context.close()


def test_sign_in_refuses_a_bad_key_keeps_a_good_one_out_of_urls_and_drops_a_revoked_one(
    web: Web,
) -> None:
    page = web.page
    response = page.goto(f"{web.stack.base_url}/")
    assert response is not None and response.ok
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"

    key = page.get_by_label("API key")
    key.fill("not-a-key")
    key.press("Enter")
    expect(page.locator("#sign-in-error")).to_have_text("That key is unknown or revoked.")
    expect(page.locator("#library")).to_be_hidden()

    key.fill(web.api.key)
    key.press("Enter")
    expect(page.locator("#library")).to_be_visible()
    expect(page.locator("#list-empty")).to_be_visible()
    assert page.evaluate("localStorage.getItem('prsnl.apiKey')") == web.api.key
    assert web.api.key not in page.url

    page.reload()  # the key is remembered by the browser
    expect(page.locator("#library")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("localStorage.getItem('prsnl.apiKey')") is None
    assert any("/api/v1/items" in r.url for r in web.requests)

    web.sign_in()
    web.stack.revoke_key(web.api.key)  # a revoked key sends the page back to sign in
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#sign-in-error")).to_contain_text("unknown or revoked")
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("localStorage.getItem('prsnl.apiKey')") is None


def test_the_event_parser_survives_any_chunking(anonymous: Web) -> None:
    """SSE arrives in arbitrary pieces: events split mid-line, CRLF, comments, unknown fields."""
    anonymous.page.goto(f"{anonymous.stack.base_url}/")
    events = anonymous.page.evaluate(
        """async () => {
          const { EventParser } = await import("/web/api.js");
          const text = ': keep-alive\\r\\n\\r\\nevent: item\\r\\ndata: {"id": 1,\\r\\n' +
            'data:  "status": "ready"}\\r\\nid: 7\\r\\n\\r\\n' +
            'event: progress\\ndata: {"progress": {"fraction": 0.5}}\\n\\n' +
            'event: deleted\\ndata: {}\\n\\ndata: not json\\n\\n';
          const results = [];
          for (const size of [1, 2, 3, 7, 1000]) {
            const seen = [];
            const parser = new EventParser((name, data) => seen.push([name, data]));
            for (let at = 0; at < text.length; at += size) parser.push(text.slice(at, at + size));
            results.push(seen);
          }
          return results;
        }"""
    )
    expected = [
        ["item", {"id": 1, "status": "ready"}],
        ["progress", {"progress": {"fraction": 0.5}}],
        ["deleted", {}],
    ]
    assert events == [expected] * 5


def test_dropped_links_join_the_box(anonymous: Web) -> None:
    page = anonymous.page
    page.goto(f"{anonymous.stack.base_url}/")
    page.locator("#links").evaluate(
        """(area) => {
          area.value = "https://example.com/a";
          const data = new DataTransfer();
          const list = ["# a comment", "https://example.com/b", "https://example.com/c"];
          data.setData("text/uri-list", list.join("\\r\\n"));
          const init = { dataTransfer: data, bubbles: true, cancelable: true };
          area.dispatchEvent(new DragEvent("drop", init));
        }"""
    )
    expected = "https://example.com/a\nhttps://example.com/b\nhttps://example.com/c"
    expect(page.locator("#links")).to_have_value(expected)


def test_pasted_links_show_progress_then_play_seek_and_re_transcode(
    web: Web, media: MediaServer, clips: Path, artifacts: Path
) -> None:
    page = web.page
    web.sign_in()
    # Paced so the download lasts a few seconds and its progress can be watched.
    rate = max(64 * 1024, (clips / "h264.mp4").stat().st_size // 4)
    link = media.url(f"/slow/h264.mp4?rate={rate}")
    page.get_by_label("Max height").select_option("720")
    results = web.save(link, "ftp://example.com/video.mp4")
    expect(results.nth(0)).to_have_text(f"Saved: {link}")
    expect(results.nth(1)).to_contain_text("(unsupported_scheme)")
    expect(results.nth(1)).to_have_class("refused")
    expect(page.locator("#links")).to_have_value("ftp://example.com/video.mp4")

    item_id = web.newest_card_id()
    card = web.card(item_id)
    status = card.locator(".status")
    expect(status).to_have_text(re.compile(r"^Downloading \d+ %$"), timeout=PIPELINE_MS)
    expect(card.locator("progress")).to_be_visible()
    expect(status).to_have_text("Ready", timeout=PIPELINE_MS)
    expect(card.locator("progress")).to_be_hidden()
    expect(card.locator(".facts")).to_have_text(re.compile(r"^direct · 0:10 · [\d.]+ [KM]B$"))
    expect(card.locator("img")).to_be_visible()
    thumbnail = card.locator("img").element_handle()
    page.wait_for_function("(img) => img.naturalWidth > 0", arg=thumbnail)
    usage = page.locator("#usage")
    expect(usage).to_have_text(_usage_line(web, web.api.get("/api/v1/storage").json()))
    expect(usage).to_contain_text("(1 ready)")
    page.screenshot(path=artifacts / "web-list.png", full_page=True)

    card.locator(".title").click()
    expect(page.locator("#item-page")).to_be_visible()
    expect(page.locator("#item-title")).to_be_focused()
    expect(page.locator("#metadata")).to_contain_text("at most 720p")
    assert web.api.item(item_id)["options"]["max_height"] == 720
    source = web.video("v.currentSrc || v.src")
    assert "sig=" in source and "exp=" in source, source
    _play_and_seek(web)
    page.screenshot(path=artifacts / "web-item.png", full_page=True)
    video_requests = [r for r in web.requests if "/video" in r.url]
    assert video_requests and all("authorization" not in r.headers for r in video_requests)

    page.get_by_label("Profile").select_option("480p")
    page.get_by_role("button", name="Re-transcode").click()
    expect(page.locator("#metadata")).to_contain_text("480p", timeout=PIPELINE_MS)
    expect(page.locator("#item-status")).to_have_text("Ready", timeout=PIPELINE_MS)
    page.wait_for_function(
        "() => document.getElementById('player').videoHeight === 480", timeout=PAGE_MS
    )
    assert web.video("v.error") is None
    assert web.api.item(item_id)["profile"] == "480p"


def _usage_line(web: Web, storage: dict[str, Any]) -> str:
    text = web.page.evaluate(
        "async (storage) => (await import('/web/format.js')).usageText(storage)", storage
    )
    assert isinstance(text, str)
    return text


def test_the_usage_line_names_items_quotas_and_free_disk(anonymous: Web) -> None:
    anonymous.page.goto(f"{anonymous.stack.base_url}/")
    counted = {"bytes": 2_500_000, "files": 4}
    storage: dict[str, Any] = {
        "free_bytes": 40_000_000_000,
        "you": {
            "usage": {"total": counted},
            "items": {"ready": 3, "failed": 1, "pending": 0},
            "quota": {
                "max_bytes": 5_000_000_000,
                "used_bytes": 2_500_000,
                "max_captures_per_day": 100,
                "captures_last_24h": 12,
            },
        },
    }
    assert _usage_line(anonymous, storage) == (
        "Your videos use 2.5 MB (3 ready, 1 failed) · quota 2.5 MB of 5.0 GB"
        " · 12 of 100 captures in the last 24 h · 40 GB free on disk"
    )
    storage["you"]["items"] = {}
    storage["you"]["quota"] = {"max_bytes": None, "used_bytes": 0, "max_captures_per_day": None}
    storage["you"]["usage"]["total"] = {"bytes": 0, "files": 0}
    assert _usage_line(anonymous, storage) == "Your videos use 0 B · 40 GB free on disk"


def _play_and_seek(web: Web) -> None:
    """Playing moves currentTime; after a seek it goes on moving from the new place."""
    web.video("(v.muted = true, v.play())")
    web.page.wait_for_function("() => document.getElementById('player').currentTime > 0.5")
    landed = web.video(
        """new Promise((resolve) => {
             v.addEventListener("seeked", () => resolve(v.currentTime), { once: true });
             v.currentTime = 7;
           })"""
    )
    assert landed >= 6.9
    web.page.wait_for_function("() => document.getElementById('player').currentTime > 7.4")
    assert web.video("v.error") is None
    assert web.video("v.paused") is False


def test_a_failed_link_shows_its_reason_retry_works_once_fixed_and_delete_removes_it(
    web: Web, clips: Path, tmp_path: Path
) -> None:
    page = web.page
    source = tmp_path / "source"
    source.mkdir()
    with MediaServer(source) as server:
        web.sign_in()
        page.get_by_label("Audio only").check()
        with page.expect_request("**/api/v1/captures") as sent:
            web.save(server.url("/files/later.mp4"))
        assert sent.value.post_data_json == {
            "url": server.url("/files/later.mp4"),
            "audio_only": True,
        }
        item_id = web.newest_card_id()
        card = web.card(item_id)
        reason = card.locator(".reason")
        expect(reason).to_contain_text("(source_not_found, at download)", timeout=PIPELINE_MS)
        expect(card.locator(".status")).to_have_text("Failed")

        shutil.copy(clips / "small.mp4", source / "later.mp4")  # the source is fixed
        card.get_by_role("button", name="Retry").click()
        expect(card.locator(".status")).to_have_text("Ready", timeout=PIPELINE_MS)
        expect(reason).to_be_hidden()
        expect(card.get_by_role("button", name="Retry")).to_be_hidden()

    ready = web.api.item(item_id)
    assert ready["options"]["audio_only"] is True and ready["video_codec"] is None, ready
    card.locator(".title").click()
    expect(page.locator("#item-page")).to_be_visible()
    expect(page.locator("#metadata")).to_contain_text("audio only")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#library")).to_be_visible()
    expect(page.locator("#notice")).to_have_text("The video was deleted.")
    expect(card).to_have_count(0)
    expect(page.locator("#usage")).to_have_text(re.compile(r"^Your videos use [\d.]+ [KMG]?B · "))
    assert web.api.get(f"/api/v1/items/{item_id}").status_code == 404
    page.reload()
    expect(page.locator("#list-empty")).to_be_visible()


def test_search_status_filter_load_more_phone_width_and_keyboard(
    web: Web, media: MediaServer, artifacts: Path
) -> None:
    page = web.page
    failed = [web.api.capture(media.url(f"/status/404?web={n}")).json()["id"] for n in range(21)]
    ready = web.api.capture(media.url("/files/short.mp4")).json()["id"]
    for item_id in [*failed, ready]:
        web.api.wait_for(item_id, timeout=PIPELINE_MS / 1000)
    newest_first = [item["id"] for item in web.api.get("/api/v1/items?limit=100").json()["items"]]
    assert len(newest_first) == 22

    web.sign_in()
    cards = page.locator("#items .card")
    expect(cards).to_have_count(PAGE_SIZE)
    page.get_by_role("button", name="Load more").click()
    expect(cards).to_have_count(22)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    assert [c.get_attribute("data-id") for c in cards.all()] == newest_first
    expect(page.locator("#items .card .retry:visible")).to_have_count(21)

    page.get_by_label("Status").select_option("ready")
    expect(cards).to_have_count(1)
    expect(cards.first.locator(".title")).to_have_text("short")
    page.get_by_label("Status").select_option("")
    expect(cards).to_have_count(PAGE_SIZE)
    page.get_by_label("Search", exact=True).fill("short")
    page.get_by_label("Search", exact=True).press("Enter")
    expect(cards).to_have_count(1)
    page.get_by_label("Search", exact=True).fill("nothing-is-called-this")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(cards).to_have_count(0)
    expect(page.locator("#list-empty")).to_be_visible()

    page.set_viewport_size({"width": 375, "height": 740})
    page.get_by_label("Search", exact=True).fill("")
    page.get_by_label("Search", exact=True).press("Enter")
    expect(cards).to_have_count(PAGE_SIZE)
    web.no_scrolling_sideways()
    page.screenshot(path=artifacts / "web-list-phone.png", full_page=True)
    cards.first.locator(".title").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#item-title")).to_be_focused()
    expect(page.locator("#item-title")).to_have_text("short")
    expect(page.locator("#player")).to_be_visible()
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    web.no_scrolling_sideways()
    page.screenshot(path=artifacts / "web-item-phone.png", full_page=True)
    page.go_back()  # the browser's Back returns to the list
    expect(page.locator("#library")).to_be_visible()


def test_items_saved_elsewhere_join_the_list_and_all_in_flight_move_live(
    web: Web, media: MediaServer
) -> None:
    """One owner stream carries every item: more in flight than a browser would open streams
    for, each reaches its end on the page without a reload."""
    page = web.page
    web.sign_in()
    expect(page.locator("#list-empty")).to_be_visible()
    failing = [web.api.capture(media.url(f"/status/404?live={n}")).json()["id"] for n in range(9)]
    ready = web.api.capture(media.url("/files/short.mp4?live")).json()["id"]
    cards = page.locator("#items .card")
    expect(cards).to_have_count(10, timeout=PAGE_MS)
    assert [c.get_attribute("data-id") for c in cards.all()] == [ready, *reversed(failing)]
    for item_id in failing:
        expect(web.card(item_id).locator(".status")).to_have_text("Failed", timeout=PIPELINE_MS)
        expect(web.card(item_id).locator(".reason")).to_contain_text("(source_not_found")
    expect(web.card(ready).locator(".status")).to_have_text("Ready", timeout=PIPELINE_MS)
    expect(web.card(ready).locator("img")).to_be_visible()
    expect(page.locator("#usage")).to_contain_text(
        re.compile(r"\((9 failed, 1 ready|1 ready, 9 failed)\)")
    )
    assert not [r for r in web.requests if re.search(r"/items/[0-9a-f-]{36}/events", r.url)]
