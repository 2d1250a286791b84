"""What every browser test watches: failed requests, console errors and off-site requests (every
asset must be vendored), and where screenshots go; and the widget tests' host site and pages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page

from engine.db import Database
from tests.browser.host_pages import HostSite, serving
from tests.browser.hosted_pages import invited, nojs  # noqa: F401  (the hosted survey tests' fixtures)
from tests.browser.screenshots import artifact_path, capture, publish
from tests.browser.widget_harness import PHONE, Embed, make_embed, open_shadow_page, widget_browser

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Frame, Request, Response


@dataclass
class Traffic:
    """What the page asked for: every URL, and anything that failed or logged an error."""

    urls: list[str]
    problems: list[str]
    # Requests cancelled (net::ERR_ABORTED), with how many documents the page had loaded when each
    # started: one the page then navigated away from was cancelled by the test's own click, which
    # is no problem of the page (a script still loading, a live check still on its way).
    aborted: list[tuple[str, int]] = field(default_factory=list)
    documents_loaded: int = 0


def watch(page: Page, live_server: str) -> Traffic:
    """Record the page's requests and problems; a document's own status is the test's to assert."""
    seen = Traffic(urls=[], problems=[])
    documents: set[str] = set()
    started: dict[Request, int] = {}

    def on_request(request: Request) -> None:
        seen.urls.append(request.url)
        started[request] = seen.documents_loaded

    def on_navigated(frame: Frame) -> None:
        if frame == page.main_frame:
            seen.documents_loaded += 1

    def on_failed(request: Request) -> None:
        if request.failure == "net::ERR_ABORTED":
            seen.aborted.append((request.url, started.get(request, seen.documents_loaded)))
        else:
            seen.problems.append(f"failed {request.url}: {request.failure}")

    def on_response(response: Response) -> None:
        if response.request.resource_type == "document":
            documents.add(response.url)
        elif response.status >= 400:
            seen.problems.append(f"{response.status} {response.url}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and message.location.get("url") not in documents:
            seen.problems.append(f"console: {message.text} at {message.location.get('url')}")

    page.on("request", on_request)
    page.on("framenavigated", on_navigated)
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.problems.append(f"script error: {error}"))
    return seen


def check(seen: Traffic, live_server: str) -> None:
    outside = [url for url in seen.urls if not url.startswith((live_server, "data:"))]
    assert not outside, f"every asset must be served locally (no CDN): {outside}"
    cancelled = [f"failed {url}: net::ERR_ABORTED" for url, at in seen.aborted if at >= seen.documents_loaded]
    assert not seen.problems + cancelled, seen.problems + cancelled


@pytest.fixture
def traffic(page: Page, live_server: str) -> Iterator[Traffic]:
    seen = watch(page, live_server)
    yield seen
    check(seen, live_server)


@pytest.fixture
def problems(traffic: Traffic) -> list[str]:
    """The problems list alone (the admin tests read it)."""
    return traffic.problems


def shoot(page: Page, name: str, *, docs: bool = False) -> Path:
    """Into test-artifacts/screenshots/; one the docs show (`docs`) also into docs/screenshots/
    when NORTHSTAR_UPDATE_SCREENSHOTS=1 (tests/browser/screenshots.py)."""
    path = artifact_path(name)
    page.evaluate("window.scrollTo(0, 0)")  # sticky sidebars are shot in place
    capture(page, path, full_page=True)
    if docs:
        publish(path, name)
    return path


# -- the survey widget on a host page of another origin (tests/browser/widget_harness.py) ---------


@pytest.fixture
def host_site() -> Iterator[HostSite]:
    with serving() as site:
        yield site


@pytest.fixture
def embed(database: Database, recruiting: dict[str, int], live_server: str, host_site: HostSite) -> Embed:
    """The recruiting playbook imported, and a workspace that allows the host's origin."""
    return make_embed(database, live_server, host_site, [host_site.origin])


@pytest.fixture
def widget_page(page: Page) -> Page:
    return open_shadow_page(page)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    with widget_browser(browser, viewport=PHONE, is_mobile=True, has_touch=True) as opened:
        yield opened
