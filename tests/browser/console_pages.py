"""The console in a real browser: signing in through its form, and a page with JavaScript off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, Route, expect

from tests.admin_client import PASSWORD


def sign_in_console(page: Page, live_server: str, email: str, target: str) -> None:
    """Sign in through the console's form on its way to `target` (the test checks where it lands)."""
    page.goto(f"{live_server}/admin/login?next={target}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


@contextmanager
def page_without_javascript(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page in a context of its own with JavaScript disabled, closed afterwards."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()


def live_checks_settled(page: Page) -> None:
    """Wait until no condition editor on the page has a live check due or on its way (its status
    drops `aria-busy`), so leaving the page aborts no request the traffic check would report."""
    statuses = page.locator("[data-live-status]")
    for n in range(statuses.count()):
        expect(statuses.nth(n)).not_to_have_attribute("aria-busy", "true")


def hold_scripts(page: Page, *names: str) -> list[Route]:
    """Hold back these static scripts (as on a slow link: the page is there and can be typed into
    before its deferred scripts run); `release` lets them load."""
    held: list[Route] = []
    for name in names:
        page.route(f"**/static/{name}*", lambda route: held.append(route))
    return held


def release(held: list[Route]) -> None:
    for route in held:
        route.continue_()
