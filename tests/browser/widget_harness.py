"""Driving the survey widget in tests: the app and a host page on another origin (`Embed`), pages
with the widget's shadow root opened, and the steps a respondent takes."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from playwright.sync_api import Browser, FrameLocator, Locator, Page, expect
from sqlalchemy import func, select

from engine.db import Database, utcnow
from engine.workspaces import ensure_workspace
from surveys.models import Response
from tests.browser.host_pages import HostSite, host_page
from tests.browser.screenshots import artifact_path, capture, publish

ROOT = Path(__file__).resolve().parents[2]
WIDGET = ROOT / "web" / "static" / "embed" / "widget.js"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 800}
TITLE = "What does success look like for your team?"
THANKS = "Thank you! We are putting your success plan together."  # the rules job makes the plan
RECEIVED = "Thank you! We have your answers."  # no account, so no plan
# The respondent's clock (key-result due dates are today + days), fixed so the screenshots in docs/
# stay the same from day to day; later than the server's today, so those dates are in the future.
BROWSER_NOW = dt.datetime(2030, 3, 2, 9, 30)
OPEN_SHADOW_ROOTS = """
(() => {
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) { return attach.call(this, { ...init, mode: "open" }); };
})();
"""


@dataclass
class Embed:
    """The app, the host site on another origin, and the workspace secret the host signs with."""

    app: str
    host: HostSite
    secret: str
    database: Database

    def token(self, sub: str = "u-1", *, ttl: int = 600, email: str = "sofia@acme.example") -> str:
        claims = {
            "sub": sub,
            "account": "acme",
            "email": email,
            "name": "Sofia Varga",
            "exp": int((utcnow() + dt.timedelta(seconds=ttl)).timestamp()),
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def page_url(self, path: str = "/app", *, token: str | None = "", **options: Any) -> str:
        """Serve a host page at `path`; `token=""` means a fresh token for contact u-1."""
        return self.host.add(
            path, host_page(self.app, token=self.token() if token == "" else token, **options)
        )

    def responses(self) -> list[Response]:
        with self.database.session() as session:
            rows = session.scalars(select(Response).order_by(Response.id)).all()
            for row in rows:
                _ = (row.contact, row.account)  # loaded before the session closes
            return list(rows)

    def count(self, model: type) -> int:
        with self.database.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


def make_embed(database: Database, live_server: str, host_site: HostSite, origins: list[str]) -> Embed:
    with database.transaction() as session:
        secret = ensure_workspace(session, origins=origins).jwt_secret
    return Embed(app=live_server, host=host_site, secret=secret, database=database)


def open_shadow_page(page: Page) -> Page:
    """`page` with the widget's shadow root opened and the respondent's clock fixed."""
    page.add_init_script(OPEN_SHADOW_ROOTS)
    page.clock.set_fixed_time(BROWSER_NOW)
    return page


@contextmanager
def widget_browser(browser: Browser, **context: Any) -> Iterator[Page]:
    """A page in a browser context of its own (`context`: viewport, locale, touch, ...), with the
    widget's shadow root opened and the respondent's clock fixed."""
    opened_context = browser.new_context(color_scheme="light", **context)
    opened_context.add_init_script(OPEN_SHADOW_ROOTS)
    opened = opened_context.new_page()
    opened.clock.set_fixed_time(BROWSER_NOW)
    opened.set_default_timeout(10_000)
    try:
        yield opened
    finally:
        opened_context.close()


def shoot(page: Page, name: str, *, docs: bool = False) -> None:
    path = artifact_path(name)
    page.mouse.move(0, 0)  # no hover state in the picture
    capture(page, path, animations="disabled")
    if docs:
        publish(path, name)


def survey_dialog(scope: Page | FrameLocator) -> Locator:
    return scope.get_by_role("dialog", name=TITLE)


def next_step(dialog: Locator, label: str = "Next") -> None:
    button = dialog.get_by_role("button", name=label, exact=True)
    # The widget ignores a click while the last step's answers are being saved (as a double click
    # should be): wait for that save, or a fast test's click is lost under load.
    expect(button).not_to_have_attribute("aria-busy", "true")
    button.click()


def pick_outcome_and_objective(dialog: Locator) -> None:
    expect(dialog.get_by_text("Step 1 of 6")).to_be_visible()
    dialog.get_by_role("checkbox", name="Hire faster").check()
    next_step(dialog)
    expect(dialog.get_by_text("Step 2 of 6")).to_be_visible()
    dialog.get_by_role("checkbox", name="Fill open roles sooner").check()
    next_step(dialog)
    expect(dialog.get_by_text("Step 3 of 6")).to_be_visible()


def finish_after_key_results(dialog: Locator) -> None:
    next_step(dialog)
    dialog.get_by_role("radio", name="Recruiting leader").check()
    next_step(dialog)
    expect(dialog.get_by_text("Step 5 of 6")).to_be_visible()
    dialog.get_by_role("radio", name="9", exact=True).click()
    next_step(dialog, "Submit")
    expect(dialog.get_by_text(THANKS)).to_be_visible()


def complete_survey(dialog: Locator) -> None:
    pick_outcome_and_objective(dialog)
    finish_after_key_results(dialog)


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    """The dismissal is posted as the widget closes (fire and forget): wait for its row."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def show_again(page: Page, arguments: str = '"outcomes"') -> None:
    """Call `Northstar.show(...)` from the host page, as its own code would after some click."""
    page.evaluate(f"window.result = null; showSurvey({arguments}); 0")


def settled(page: Page) -> Any:
    """Wait for the show() promise, then return what it resolved with."""
    page.wait_for_function("window.result !== null")
    return result(page)


def result(page: Page) -> Any:
    """What the host's `Northstar.show()` promise resolved with (None while the survey is open)."""
    return page.evaluate("window.result")


def in_shadow(page: Page, script: str) -> Any:
    """Evaluate `script` (a function of the widget's shadow root) in the host page."""
    return page.evaluate(f"(({script}))(document.querySelector('[data-northstar]').shadowRoot)")


def animations_done(page: Page) -> None:
    """Wait for the widget's entrance animations (a card or the dialog slides in for 0.2 s) to
    end: measured mid-slide, a 32 px button is 32.00003 px tall."""
    in_shadow(
        page,
        """async root => {
          const finite = root.getAnimations().filter(a => a.effect.getTiming().iterations !== Infinity);
          await Promise.all(finite.map(a => a.finished));
        }""",
    )


def focused(page: Page) -> dict[str, Any]:
    """The element focused inside the widget, and whether its focus outline shows."""
    found: dict[str, Any] = in_shadow(
        page,
        """root => {
          const e = root.activeElement;
          if (!e) return {tag: null};
          const style = getComputedStyle(e);
          return {tag: e.tagName.toLowerCase(), type: e.getAttribute('role') || e.type,
                  name: e.getAttribute('aria-label') || e.textContent.trim() || e.value,
                  outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2};
        }""",
    )
    return found


def tab_to(page: Page, name: str, *, limit: int = 30) -> dict[str, Any]:
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if now.get("name") == name:
            return now
    raise AssertionError(f"Tab never reached {name!r}; focus is on {focused(page)}")
