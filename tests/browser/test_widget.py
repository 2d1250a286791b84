"""The in-app survey widget in real headless Chromium, embedded in a host page on another origin.

The app runs on `http://127.0.0.1:<port>` (`live_server`, real PostgreSQL and Redis); the host
page on `http://localhost:<port>` (tests/browser/host_pages.py) loads `/embed/v1/widget.js` with
the documented stub and a JWT its "backend" signed with the workspace's secret. The widget's shadow
root is closed in production; the tests open it with an init script (the browser's own
`attachShadow`, patched before any page script runs) so Playwright's locators can reach inside."""

from __future__ import annotations

import datetime as dt
import gzip
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from playwright.sync_api import Browser, FrameLocator, Locator, Page, expect
from sqlalchemy import func, select

from engine.accounts import Account
from engine.db import Database, utcnow
from engine.plans.models import SuccessPlan
from engine.playbook import import_playbook, resolve_playbook
from engine.workspaces import ensure_workspace
from surveys.models import Response, ResponseStatus, SurveyDismissal
from tests.browser.host_pages import HOSTILE_CSS, HostSite, host_page, serving

ROOT = Path(__file__).resolve().parents[2]
WIDGET = ROOT / "web" / "static" / "embed" / "widget.js"
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 800}
TITLE = "What does success look like for your team?"
THANKS = "Thank you! Your success plan is ready."
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


@pytest.fixture
def host_site() -> Iterator[HostSite]:
    with serving() as site:
        yield site


def _embed(database: Database, live_server: str, host_site: HostSite, origins: list[str]) -> Embed:
    with database.transaction() as session:
        secret = ensure_workspace(session, origins=origins).jwt_secret
    return Embed(app=live_server, host=host_site, secret=secret, database=database)


@pytest.fixture
def embed(database: Database, recruiting: dict[str, int], live_server: str, host_site: HostSite) -> Embed:
    """The recruiting playbook imported, and a workspace that allows the host's origin."""
    return _embed(database, live_server, host_site, [host_site.origin])


@pytest.fixture
def widget_page(page: Page) -> Page:
    page.add_init_script(OPEN_SHADOW_ROOTS)
    page.clock.set_fixed_time(BROWSER_NOW)
    return page


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, color_scheme="light", is_mobile=True, has_touch=True)
    context.add_init_script(OPEN_SHADOW_ROOTS)
    opened = context.new_page()
    opened.clock.set_fixed_time(BROWSER_NOW)
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def shoot(page: Page, name: str, *, docs: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.mouse.move(0, 0)  # no hover state in the picture
    page.screenshot(path=str(path), animations="disabled")
    if docs:
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_SHOTS / f"{name}.png")


def survey_dialog(scope: Page | FrameLocator) -> Locator:
    return scope.get_by_role("dialog", name=TITLE)


def next_step(dialog: Locator, label: str = "Next") -> None:
    dialog.get_by_role("button", name=label, exact=True).click()


def pick_outcome_and_objective(dialog: Locator) -> None:
    expect(dialog.get_by_text("Step 1 of 5")).to_be_visible()
    dialog.get_by_role("checkbox", name="Hire faster").check()
    next_step(dialog)
    expect(dialog.get_by_text("Step 2 of 5")).to_be_visible()
    dialog.get_by_role("checkbox", name="Fill open roles sooner").check()
    next_step(dialog)
    expect(dialog.get_by_text("Step 3 of 5")).to_be_visible()


def finish_after_key_results(dialog: Locator) -> None:
    next_step(dialog)
    dialog.get_by_role("radio", name="Recruiting leader").check()
    next_step(dialog)
    expect(dialog.get_by_text("Step 5 of 5")).to_be_visible()
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


@pytest.mark.browser
def test_full_flow_builds_the_plan_and_links_to_it(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url())
    dialog = survey_dialog(page)
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("aria-modal", "true")
    expect(dialog.get_by_text("Five quick questions")).to_be_visible()
    shoot(page, "widget-outcomes-desktop")

    dialog.get_by_role("checkbox", name="Hire faster").check()
    next_step(dialog)
    # Only objectives under the chosen outcome are offered.
    expect(dialog.get_by_role("checkbox", name="Fill open roles sooner")).to_be_visible()
    expect(
        dialog.get_by_role("checkbox", name="Turn more careers-site visitors into applicants")
    ).to_be_visible()
    expect(dialog.get_by_role("checkbox", name="Keep the people you cannot afford to lose")).to_have_count(0)
    expect(dialog.get_by_role("checkbox", name="Get more of your offers accepted")).to_have_count(0)
    dialog.get_by_role("checkbox", name="Fill open roles sooner").check()
    dialog.get_by_role("checkbox", name="Turn more careers-site visitors into applicants").check()
    next_step(dialog)

    # Key results come prefilled from the library: today, target, and a due date `days` ahead.
    fill_time = dialog.get_by_role("group", name="Fill open roles sooner")
    expect(fill_time.get_by_role("spinbutton", name="Today")).to_have_value("42")
    expect(fill_time.get_by_role("spinbutton", name="Target")).to_have_value("30")
    today = BROWSER_NOW.date()
    expect(fill_time.get_by_label("By")).to_have_value((today + dt.timedelta(days=120)).isoformat())
    conversion = dialog.get_by_role("group", name="Turn more careers-site visitors into applicants")
    expect(conversion.get_by_role("spinbutton", name="Today")).to_have_value("3")
    expect(conversion.get_by_role("spinbutton", name="Target")).to_have_value("3.5")
    expect(conversion.get_by_label("By")).to_have_attribute("min", (today + dt.timedelta(days=1)).isoformat())
    shoot(page, "widget-key-results-desktop", docs=True)

    # The server's own check (the partial save after the step) comes back inline, next to the objective.
    fill_time.get_by_role("spinbutton", name="Target").fill("42")
    next_step(dialog)
    expect(fill_time.get_by_text("Target must differ from the baseline")).to_be_visible()
    expect(fill_time.get_by_role("spinbutton", name="Target")).to_have_attribute("aria-invalid", "true")
    expect(fill_time.get_by_role("spinbutton", name="Target")).to_be_focused()
    expect(fill_time.get_by_role("spinbutton", name="Today")).to_have_attribute("aria-invalid", "false")
    expect(dialog.get_by_text("Step 3 of 5")).to_be_visible()
    shoot(page, "widget-key-results-error")

    fill_time.get_by_role("spinbutton", name="Target").fill("28")
    due = (today + dt.timedelta(days=100)).isoformat()
    fill_time.get_by_label("By").fill(due)
    conversion.get_by_role("spinbutton", name="Today").fill("2.8")
    next_step(dialog)
    dialog.get_by_role("radio", name="Recruiting leader").check()
    next_step(dialog)
    dialog.get_by_role("radio", name="9", exact=True).click()
    expect(dialog.get_by_role("radio", name="9", exact=True)).to_have_attribute("aria-checked", "true")
    next_step(dialog, "Submit")

    expect(dialog.get_by_text(THANKS)).to_be_visible()
    link = dialog.get_by_role("link", name="Open your plan")
    expect(link).to_have_attribute("href", re.compile(r"^http://northstar\.test/p/"))
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener")
    expect(link).to_be_focused()
    shoot(page, "widget-thanks-desktop", docs=True)

    (response,) = embed.responses()
    assert response.status == ResponseStatus.COMPLETED
    assert response.channel.value == "in_app"
    assert response.contact is not None and response.contact.external_id == "u-1"
    assert response.answers == {
        "outcomes": ["hire_faster"],
        "objectives": ["time_to_fill", "applicant_conversion"],
        "key_results": {
            "time_to_fill": {"baseline": 42.0, "target": 28.0, "due_date": due},
            "applicant_conversion": {
                "baseline": 2.8,
                "target": 3.5,
                "due_date": (today + dt.timedelta(days=60)).isoformat(),
            },
        },
        "role": "leader",
        "nps": 9,
    }
    with embed.database.session() as session:
        account = session.scalars(select(Account).where(Account.external_id == "acme")).one()
        assert session.scalars(select(SuccessPlan).where(SuccessPlan.account_id == account.id)).one()

    dialog.get_by_role("button", name="Not now").click()
    expect(dialog).to_have_count(0)
    assert result(page) == {"status": "completed"}


@pytest.mark.browser
def test_hostile_host_css_does_not_break_the_widget(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url(css=HOSTILE_CSS))
    dialog = survey_dialog(page)
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box is not None and 500 <= box["width"] <= 560 and box["height"] < 780
    sizes = in_shadow(
        page,
        """root => ({
          legend: getComputedStyle(root.querySelector('legend')).fontSize,
          dialog: getComputedStyle(root.querySelector('[role=dialog]')).fontSize,
          next: root.querySelector('button[type=submit]').getBoundingClientRect().height,
          overlay: getComputedStyle(root.querySelector('.ov')).position,
        })""",
    )
    assert sizes == {"legend": "16px", "dialog": "15px", "next": 40, "overlay": "fixed"}
    expect(dialog.get_by_role("button", name="Next")).to_be_visible()
    expect(dialog.get_by_role("checkbox", name="Hire faster")).to_be_visible()
    complete_survey(dialog)
    assert [r.status for r in embed.responses()] == [ResponseStatus.COMPLETED]


@pytest.mark.browser
def test_a_strict_content_security_policy_on_the_host_page(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Refused" in message.text else None)
    page.goto(embed.page_url(strict_csp=True))
    dialog = survey_dialog(page)
    expect(dialog).to_be_visible()
    styled = in_shadow(page, "root => getComputedStyle(root.querySelector('[role=dialog]')).borderRadius")
    assert styled == "12px", "the widget's styles apply under style-src without 'unsafe-inline'"
    complete_survey(dialog)
    assert not refused, refused
    assert [r.status for r in embed.responses()] == [ResponseStatus.COMPLETED]


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


@pytest.mark.browser
def test_keyboard_only(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url(show=None))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "open"
    page.keyboard.press("Enter")  # the host's own button opens the survey
    dialog = survey_dialog(page)
    expect(dialog).to_be_visible()

    # Focus moved into the dialog, onto the question (read out; no answer looks pre-selected).
    assert focused(page)["tag"] == "legend"
    page.keyboard.press("Tab")
    start = focused(page)
    assert start["type"] == "checkbox" and start["outline"], start
    page.keyboard.press("Tab")  # second outcome, alphabetically: Hire faster
    page.keyboard.press("Space")
    expect(dialog.get_by_role("checkbox", name="Hire faster")).to_be_checked()
    assert tab_to(page, "Next")["outline"]
    page.keyboard.press("Enter")

    expect(dialog.get_by_text("Step 2 of 5")).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the first objective offered
    assert tab_to(page, "Next")["outline"]
    page.keyboard.press("Enter")

    expect(dialog.get_by_text("Step 3 of 5")).to_be_visible()
    page.keyboard.press("Tab")
    assert focused(page)["type"] == "number"
    page.keyboard.press("Enter")  # submits the step from a field

    expect(dialog.get_by_text("Step 4 of 5")).to_be_visible()
    page.keyboard.press("Tab")
    assert focused(page)["type"] == "radio"
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")  # native radio keys
    expect(dialog.get_by_role("radio", name="Recruiting leader")).to_be_checked()
    assert tab_to(page, "Next")["outline"]
    page.keyboard.press("Enter")

    expect(dialog.get_by_text("Step 5 of 5")).to_be_visible()
    page.keyboard.press("Tab")
    assert focused(page) | {"outline": None} == {
        "tag": "button",
        "type": "radio",
        "name": "0",
        "outline": None,
    }
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(dialog.get_by_role("radio", name="3", exact=True)).to_have_attribute("aria-checked", "true")
    # A low score asks one more question (show_if), so the step count grows.
    expect(dialog.get_by_text("Step 5 of 6")).to_be_visible()
    page.keyboard.press("End")
    expect(dialog.get_by_text("Step 5 of 5")).to_be_visible()
    page.keyboard.press("ArrowLeft")
    expect(dialog.get_by_role("radio", name="9", exact=True)).to_have_attribute("aria-checked", "true")
    assert focused(page)["outline"]

    # Tab is trapped in the dialog: from the last control it wraps to the first (the close button).
    tab_to(page, "Submit")
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "Not now"
    page.keyboard.press("Shift+Tab")
    assert focused(page)["name"] == "Submit"
    page.keyboard.press("Enter")

    expect(dialog.get_by_text(THANKS)).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert page.evaluate("document.activeElement.id") == "open", "focus goes back where it was"
    assert result(page) == {"status": "completed"}
    (response,) = embed.responses()
    assert response.status == ResponseStatus.COMPLETED and response.answers["nps"] == 9
    assert embed.count(SurveyDismissal) == 0


@pytest.mark.browser
def test_phone_bottom_sheet_without_horizontal_overflow(phone: Page, embed: Embed) -> None:
    page = phone
    page.goto(embed.page_url())
    dialog = survey_dialog(page)
    expect(dialog).to_be_visible()
    dialog.evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")  # it slides in
    box = dialog.bounding_box()
    assert box is not None and box["width"] == PHONE["width"] and box["x"] == 0
    assert abs(box["y"] + box["height"] - PHONE["height"]) <= 1, "a bottom sheet, flush with the bottom"

    def no_overflow() -> None:
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert in_shadow(page, "root => root.querySelector('.bd').scrollWidth") <= PHONE["width"]

    no_overflow()
    shoot(page, "widget-outcomes-phone")
    pick_outcome_and_objective(dialog)
    no_overflow()
    shoot(page, "widget-key-results-phone", docs=True)
    next_step(dialog)
    dialog.get_by_role("radio", name="Recruiting leader").check()
    next_step(dialog)
    no_overflow()
    shoot(page, "widget-nps-phone")
    dialog.get_by_role("radio", name="10", exact=True).click()
    next_step(dialog, "Submit")
    expect(dialog.get_by_text(THANKS)).to_be_visible()
    no_overflow()
    shoot(page, "widget-thanks-phone")
    assert [r.status for r in embed.responses()] == [ResponseStatus.COMPLETED]


@pytest.mark.browser
def test_a_half_answered_survey_resumes_after_a_reload(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url())
    dialog = survey_dialog(page)
    dialog.get_by_role("checkbox", name="Hire better people").check()
    next_step(dialog)
    expect(dialog.get_by_text("Step 2 of 5")).to_be_visible()
    (partial,) = embed.responses()
    assert partial.status == ResponseStatus.PARTIAL
    assert partial.answers == {"outcomes": ["hire_better"]}

    page.reload()
    expect(dialog.get_by_text("Step 2 of 5")).to_be_visible()
    expect(dialog.get_by_role("checkbox", name="Get more of your offers accepted")).to_be_visible()
    dialog.get_by_role("button", name="Back").click()
    expect(dialog.get_by_role("checkbox", name="Hire better people")).to_be_checked()
    next_step(dialog)
    dialog.get_by_role("checkbox", name="Get more of your offers accepted").check()
    next_step(dialog)
    finish_after_key_results(dialog)

    (completed,) = embed.responses()  # the same response, completed
    assert completed.client_response_id == partial.client_response_id
    assert completed.status == ResponseStatus.COMPLETED
    assert completed.answers["objectives"] == ["offer_acceptance"]


@pytest.mark.browser
def test_display_rule_once_per_contact_and_paused_after_a_dismissal(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url("/done"))
    dialog = survey_dialog(page)
    complete_survey(dialog)
    dialog.get_by_role("button", name="Not now").click()
    expect(dialog).to_have_count(0)
    show_again(page)
    assert settled(page) == {"status": "skipped"}
    expect(dialog).to_have_count(0)

    # Another contact closes it with Escape: dismissed, so not shown again until forced.
    page.goto(embed.page_url("/later", token=embed.token("u-2", email="li@acme.example")))
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    page.wait_for_function("window.result !== null")
    assert result(page) == {"status": "dismissed"}
    wait_until(lambda: embed.count(SurveyDismissal) == 1)
    page.reload()
    page.wait_for_function("window.result !== null")
    assert result(page) == {"status": "skipped"}
    expect(dialog).to_have_count(0)
    show_again(page, '"outcomes", {force: true}')
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("Step 1 of 5")).to_be_visible()
    assert embed.count(Response) == 1


@pytest.mark.browser
def test_a_disallowed_origin_sees_the_server_message_and_stores_nothing(
    widget_page: Page, database: Database, recruiting: dict[str, int], live_server: str, host_site: HostSite
) -> None:
    embed = _embed(database, live_server, host_site, origins=[])
    page = widget_page
    page.goto(embed.page_url())
    alert = page.get_by_role("dialog").get_by_role("alert")
    expect(alert).to_contain_text(f"{host_site.origin} is not an allowed origin of workspace 'default'")
    expect(alert).to_contain_text(f"northstar workspace set default --origin {host_site.origin}")
    expect(page.get_by_role("dialog", name="Origin not allowed")).to_be_visible()
    shoot(page, "widget-origin-refused")
    page.get_by_role("button", name="Close").click()
    page.wait_for_function("window.result !== null")
    assert result(page)["status"] == "error"
    assert embed.count(Response) == 0


def sized_to_content(page: Page, frame_element: Locator, content: Locator) -> float:
    """Wait until the host page has sized the iframe to the frame's content (it posts its height
    after each step), so a click lands where the button now is; return that height."""
    for _ in range(50):
        outer, inner = frame_element.bounding_box(), content.bounding_box()
        if outer and inner and abs(outer["height"] - min(inner["height"], DESKTOP["height"] - 48)) <= 1:
            return outer["height"]
        page.wait_for_timeout(50)
    raise AssertionError(f"the iframe is {outer} for content {inner}")


@pytest.mark.browser
def test_iframe_mode_completes_the_survey(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(embed.page_url(show='"outcomes", {mode: "iframe"}'))
    frame_element = page.locator("iframe")
    expect(frame_element).to_be_visible()
    src = frame_element.get_attribute("src") or ""
    assert src.startswith(f"{embed.app}/embed/v1/frame/outcomes?workspace=default")

    frame = page.frame_locator("iframe")
    region = frame.get_by_role("region", name=TITLE)
    expect(region).to_be_visible()
    expect(page.get_by_role("dialog", name=TITLE)).to_be_visible()  # the host side's modal
    assert sized_to_content(page, frame_element, region) > 600
    region.get_by_role("checkbox", name="Hire faster").check()
    next_step(region)
    expect(region.get_by_text("Step 2 of 5")).to_be_visible()
    expect(region.get_by_role("checkbox", name="Keep the people you cannot afford to lose")).to_have_count(0)
    sized_to_content(page, frame_element, region)
    region.get_by_role("checkbox", name="Fill open roles sooner").check()
    next_step(region)
    expect(region.get_by_text("Step 3 of 5")).to_be_visible()
    sized_to_content(page, frame_element, region)
    next_step(region)
    expect(region.get_by_text("Step 4 of 5")).to_be_visible()
    sized_to_content(page, frame_element, region)
    region.get_by_role("radio", name="Recruiting leader").check()
    next_step(region)
    expect(region.get_by_text("Step 5 of 5")).to_be_visible()
    sized_to_content(page, frame_element, region)
    region.get_by_role("radio", name="9", exact=True).click()
    next_step(region, "Submit")
    expect(region.get_by_text(THANKS)).to_be_visible()
    expect(region.get_by_role("link", name="Open your plan")).to_be_visible()
    assert sized_to_content(page, frame_element, region) < 400
    shoot(page, "widget-iframe-thanks")
    region.get_by_role("button", name="Not now").click()
    expect(frame_element).to_have_count(0)
    assert settled(page) == {"status": "completed"}

    (response,) = embed.responses()
    assert response.status == ResponseStatus.COMPLETED and response.channel.value == "in_app"
    assert response.contact is not None and response.contact.external_id == "u-1"
    token_prefix = embed.token().split(".")[0]
    assert not [url for url in requests if token_prefix in url], "the token never travels in a URL"


@pytest.fixture
def german(browser: Browser) -> Iterator[Page]:
    """A browser set to German, as a German respondent's would be."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light", locale="de-DE")
    context.add_init_script(OPEN_SHADOW_ROOTS)
    opened = context.new_page()
    opened.clock.set_fixed_time(BROWSER_NOW)
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


@pytest.mark.browser
def test_german_locale(german: Page, embed: Embed) -> None:
    page = german
    page.goto(embed.page_url(show='"outcomes", {locale: "de"}'))
    dialog = survey_dialog(page)
    expect(dialog).to_have_attribute("lang", "de")
    expect(dialog.get_by_text("Schritt 1 von 5")).to_be_visible()
    expect(dialog.get_by_role("button", name="Später")).to_be_visible()
    expect(dialog.get_by_text("Wählen Sie höchstens 2.")).to_be_visible()
    next_step(dialog, "Weiter")
    expect(dialog.get_by_text("Bitte beantworten Sie diese Frage.")).to_be_visible()
    dialog.get_by_role("checkbox", name="Hire faster").check()
    expect(dialog.get_by_text("Bitte beantworten Sie diese Frage.")).to_have_count(0)
    next_step(dialog, "Weiter")
    expect(dialog.get_by_text("Schritt 2 von 5")).to_be_visible()
    expect(dialog.get_by_role("button", name="Zurück")).to_be_visible()
    dialog.get_by_role("checkbox", name="Fill open roles sooner").check()
    next_step(dialog, "Weiter")
    expect(dialog.get_by_role("spinbutton", name="Heute")).to_have_value("42")
    expect(dialog.get_by_role("spinbutton", name="Ziel")).to_have_value("30")
    shoot(page, "widget-key-results-de")


@pytest.mark.browser
def test_an_expired_token_shows_why_and_stores_nothing(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url(token=embed.token(ttl=-120)))
    alert = page.get_by_role("dialog", name="Identity token rejected").get_by_role("alert")
    expect(alert).to_have_text("the identity token has expired; ask the host page for a new one")
    assert embed.count(Response) == 0


@pytest.mark.browser
def test_the_shadow_root_is_closed_to_the_host_page(page: Page, embed: Embed) -> None:
    page.goto(embed.page_url())
    host = page.locator("[data-northstar]")
    expect(host).to_be_attached()
    page.wait_for_function("document.querySelector('[data-northstar]')")
    assert page.evaluate("document.querySelector('[data-northstar]').shadowRoot") is None
    # Closed to scripts, not to assistive technology: the browser's accessibility tree has the dialog.
    cdp = page.context.new_cdp_session(page)
    for _ in range(50):
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        names = {n.get("name", {}).get("value") for n in nodes if n.get("role", {}).get("value") == "dialog"}
        if TITLE in names:
            break
        page.wait_for_timeout(100)
    assert TITLE in names


FEEDBACK = {
    "key": "feedback",
    "title": "Quick feedback",
    "anonymous": True,
    "questions": [
        {
            "key": "topics",
            "kind": "multi_choice",
            "title": "What do you use us for?",
            "required": True,
            "options": [
                {"value": "jobs", "label": "Posting jobs"},
                {"value": "screening", "label": "Screening candidates"},
            ],
        },
        {
            "key": "csat",
            "kind": "csat",
            "title": "How happy are you with screening?",
            "show_if": {"in": ["screening", {"var": "answers.topics"}]},
        },
        {"key": "comment", "kind": "text", "title": "Anything else?", "max_length": 40},
    ],
}


@pytest.mark.browser
def test_anonymous_survey_asks_for_an_email_on_the_last_step(widget_page: Page, embed: Embed) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    with embed.database.transaction() as session:
        import_playbook(session, yaml.safe_dump({"surveys": [*document["surveys"], FEEDBACK]}))
    page = widget_page
    page.goto(embed.page_url(token=None, show='"feedback"'))
    dialog = page.get_by_role("dialog", name="Quick feedback")
    expect(dialog.get_by_text("Step 1 of 2")).to_be_visible()
    dialog.get_by_role("checkbox", name="Screening candidates").check()
    expect(dialog.get_by_text("Step 1 of 3")).to_be_visible()  # show_if with "in"
    next_step(dialog)
    dialog.get_by_role("radio", name="4", exact=True).click()
    next_step(dialog)
    comment = dialog.get_by_role("textbox", name="Anything else?")
    comment.fill("x" * 60)
    expect(comment).to_have_value("x" * 40)  # max_length
    assert embed.count(Response) == 0, "no partial saves before the respondent is known"
    next_step(dialog, "Submit")
    expect(dialog.get_by_text("Please answer this question.")).to_be_visible()
    expect(dialog.get_by_role("textbox", name="Your work email")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("textbox", name="Your work email").fill("Ann@X.example")
    next_step(dialog, "Submit")
    expect(dialog.get_by_text(THANKS)).to_be_visible()
    expect(dialog.get_by_role("link")).to_have_count(0)  # no account, so no plan
    (response,) = embed.responses()
    assert (response.account_id, response.respondent_email) == (None, "ann@x.example")
    assert response.answers == {"topics": ["screening"], "csat": 4, "comment": "x" * 40}


def test_widget_is_under_ten_kilobytes_gzipped() -> None:
    size = len(gzip.compress(WIDGET.read_bytes(), compresslevel=9))
    assert size < 10_000, f"widget.js is {size} bytes gzipped; the budget is under 10 KB (10,000 bytes)"
