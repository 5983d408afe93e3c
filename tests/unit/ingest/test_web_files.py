"""The web page's files: nothing fetched from elsewhere at run time, no inline script or
style (the Content-Security-Policy forbids both), and the policy itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from prsnl_ingest.api.web import WEB_ROOT, content_security_policy, security_headers

FILES = sorted(p for p in WEB_ROOT.iterdir() if p.is_file())
# Anything that makes a browser load from an address: attributes, CSS url(), JS imports.
LOADING_HTML = re.compile(
    r"\b(?:src|href|action|poster|srcset)\s*=\s*[\"']?\s*(?:[a-z]+:)?//", re.I
)
LOADING_CSS = re.compile(r"(?:url\(|@import)\s*[\"']?\s*(?:[a-z]+:)?//", re.I)
LOADING_JS = re.compile(r"(?:\bfrom\s*|\bimport\s*\(\s*|fetch\s*\(\s*)[\"'`](?:[a-z]+:)?//", re.I)


class Markup(HTMLParser):
    """Scripts, inline handlers and style attributes of an HTML file."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            self.scripts.append(names)
        if tag == "style":
            self.inline.append("<style>")
        self.inline.extend(f"{tag} {name}" for name in names if name.startswith("on"))
        self.inline.extend(f"{tag} style" for name in names if name == "style")


def test_the_page_has_its_files() -> None:
    names = {p.name for p in FILES}
    assert {"index.html", "app.js", "api.js", "style.css"} <= names


@pytest.mark.parametrize(
    ("pattern", "sample"),
    [
        (LOADING_HTML, '<script src="https://cdn.example.org/x.js">'),
        (LOADING_HTML, "<link href=//cdn.example.org/x.css>"),
        (LOADING_CSS, "body { background: url('https://cdn.example.org/a.png') }"),
        (LOADING_CSS, '@import "//cdn.example.org/x.css";'),
        (LOADING_JS, 'import { x } from "https://cdn.example.org/x.js";'),
        (LOADING_JS, "await import('//cdn.example.org/x.js')"),
    ],
)
def test_the_checks_below_see_a_remote_load(pattern: re.Pattern[str], sample: str) -> None:
    assert pattern.search(sample)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_file_loads_anything_from_another_origin(path: Path) -> None:
    text = path.read_text()
    for pattern in (LOADING_HTML, LOADING_CSS, LOADING_JS):
        assert not pattern.search(text), pattern.search(text)


def test_the_html_has_no_inline_script_style_or_handlers() -> None:
    markup = Markup()
    markup.feed((WEB_ROOT / "index.html").read_text())
    assert markup.scripts, "the page loads its module"
    assert all(s.get("src", "").startswith("/web/") for s in markup.scripts), markup.scripts
    assert all(s.get("type") == "module" for s in markup.scripts)
    assert markup.inline == []


def test_no_script_writes_markup_from_data() -> None:
    """Titles and descriptions come from other sites: they go in as text, never as HTML."""
    for path in WEB_ROOT.glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.name} uses {sink}"


def test_the_policy_allows_only_the_page_itself_by_default() -> None:
    policy = dict(part.split(" ", 1) for part in content_security_policy().split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["media-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in content_security_policy()


def test_media_may_come_from_the_public_url_and_nothing_else_is_widened() -> None:
    policy = dict(
        part.split(" ", 1)
        for part in content_security_policy("https://media.example.org/base/").split("; ")
    )
    assert policy["media-src"] == "'self' https://media.example.org"
    assert policy["img-src"] == "'self' https://media.example.org"
    assert policy["script-src"] == "'self'"
    for odd in ("javascript:alert(1)", "media.example.org", "https://", "ftp://host"):
        assert content_security_policy(odd) == content_security_policy()


def test_the_other_security_headers() -> None:
    headers = security_headers()
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
