"""The survey widget in real headless Chromium, as people of all sorts meet it: keyboard only, on a
phone, in iframe mode, in German (the embedding itself: tests/browser/test_widget.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from surveys.models import ResponseStatus, SurveyDismissal
from tests.browser.widget_harness import (
    DESKTOP,
    PHONE,
    THANKS,
    TITLE,
    Embed,
    focused,
    in_shadow,
    next_step,
    pick_outcome_and_objective,
    result,
    settled,
    shoot,
    survey_dialog,
    tab_to,
    widget_browser,
)


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

    expect(dialog.get_by_text("Step 2 of 6")).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the first objective offered
    assert tab_to(page, "Next")["outline"]
    page.keyboard.press("Enter")

    expect(dialog.get_by_text("Step 3 of 6")).to_be_visible()
    page.keyboard.press("Tab")
    assert focused(page)["type"] == "number"
    page.keyboard.press("Enter")  # submits the step from a field

    expect(dialog.get_by_text("Step 4 of 6")).to_be_visible()
    page.keyboard.press("Tab")
    assert focused(page)["type"] == "radio"
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")  # native radio keys
    expect(dialog.get_by_role("radio", name="Recruiting leader")).to_be_checked()
    assert tab_to(page, "Next")["outline"]
    page.keyboard.press("Enter")

    expect(dialog.get_by_text("Step 5 of 6")).to_be_visible()
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
    # A low score asks one more question (show_if). It was counted all along, so the count stays.
    expect(dialog.get_by_role("button", name="Next", exact=True)).to_be_visible()
    expect(dialog.get_by_text("Step 5 of 6")).to_be_visible()
    page.keyboard.press("End")  # a 10: nothing follows, and the count says so with the button
    expect(dialog.get_by_role("button", name="Submit", exact=True)).to_be_visible()
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
    expect(region.get_by_text("Step 2 of 6")).to_be_visible()
    expect(region.get_by_role("checkbox", name="Keep the people you cannot afford to lose")).to_have_count(0)
    sized_to_content(page, frame_element, region)
    region.get_by_role("checkbox", name="Fill open roles sooner").check()
    next_step(region)
    expect(region.get_by_text("Step 3 of 6")).to_be_visible()
    sized_to_content(page, frame_element, region)
    next_step(region)
    expect(region.get_by_text("Step 4 of 6")).to_be_visible()
    sized_to_content(page, frame_element, region)
    region.get_by_role("radio", name="Recruiting leader").check()
    next_step(region)
    expect(region.get_by_text("Step 5 of 6")).to_be_visible()
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
    with widget_browser(browser, viewport=DESKTOP, locale="de-DE") as opened:
        yield opened


@pytest.mark.browser
def test_german_locale(german: Page, embed: Embed) -> None:
    page = german
    page.goto(embed.page_url(show='"outcomes", {locale: "de"}'))
    dialog = survey_dialog(page)
    expect(dialog).to_have_attribute("lang", "de")
    expect(dialog.get_by_text("Schritt 1 von 6")).to_be_visible()
    expect(dialog.get_by_role("button", name="Später")).to_be_visible()
    expect(dialog.get_by_text("Wählen Sie höchstens 2.")).to_be_visible()
    next_step(dialog, "Weiter")
    expect(dialog.get_by_text("Bitte beantworten Sie diese Frage.")).to_be_visible()
    dialog.get_by_role("checkbox", name="Hire faster").check()
    expect(dialog.get_by_text("Bitte beantworten Sie diese Frage.")).to_have_count(0)
    next_step(dialog, "Weiter")
    expect(dialog.get_by_text("Schritt 2 von 6")).to_be_visible()
    expect(dialog.get_by_role("button", name="Zurück")).to_be_visible()
    dialog.get_by_role("checkbox", name="Fill open roles sooner").check()
    next_step(dialog, "Weiter")
    expect(dialog.get_by_role("spinbutton", name="Heute")).to_have_value("42")
    expect(dialog.get_by_role("spinbutton", name="Ziel")).to_have_value("30")
    shoot(page, "widget-key-results-de")
