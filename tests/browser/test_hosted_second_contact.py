"""A second contact answers the hosted survey after the champion's answers made the plan: the
thank-you says whether their answers changed it (a new objective joins it with their numbers) or
left it as it was. JavaScript off, as in tests/browser/test_hosted_survey.py."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from engine.accounts import Contact
from engine.config import Settings
from engine.db import Database, utcnow
from engine.plans.models import SuccessPlan
from surveys.links import survey_link
from surveys.service import Respondent, ResponseIn, submit_response
from tests.browser.conftest import shoot
from tests.browser.hosted_pages import PHONE, Invited, fits, objectives_of, plans, submit
from tests.factories import outcomes_answers


def champion_made_the_plan(database: Database, invited: Invited, settings: Settings) -> str:
    """The champion answered first (that made the plan); the sponsor's hosted survey path."""
    with database.transaction() as session:
        champion = session.get(Contact, invited.contact_id)
        assert champion is not None
        submit_response(
            session,
            "outcomes",
            ResponseIn(f"hosted-{champion.id}", None, outcomes_answers(), channel="hosted"),
            now=utcnow(),
            respondent=Respondent(champion.account, champion, champion.email),
        )
        sponsor = next(c for c in champion.account.contacts if c.id != champion.id)
        return survey_link(settings, sponsor, "outcomes").removeprefix(settings.public_url)


def sponsor_answers_after_the_champion(
    page: Page,
    live_server: str,
    invited: Invited,
    database: Database,
    settings: Settings,
    picks: tuple[str, str],
) -> tuple[SuccessPlan, list[str]]:
    """The champion's answers made the plan; the sponsor then answers on a phone (`picks`: an
    outcome's and an objective's labels, key results as prefilled). The plan and what it measured
    before his answers."""
    path = champion_made_the_plan(database, invited, settings)
    [plan] = plans(database)
    measured = objectives_of(database, plan.id)
    page.set_viewport_size(PHONE)
    page.goto(live_server + path)
    page.get_by_label(picks[0]).check()
    assert submit(page, "Next") == 200
    page.get_by_label(picks[1]).check()
    assert submit(page, "Next") == 200
    assert submit(page, "Next") == 200  # the key results as prefilled
    page.get_by_label("Executive / budget owner").check()
    assert submit(page, "Submit") == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you! We have your answers.")
    return plan, measured


@pytest.mark.browser
def test_a_second_contact_is_told_the_account_already_has_its_plan(
    nojs: Page, live_server: str, invited: Invited, database: Database, settings: Settings
) -> None:
    page = nojs
    # He picks what the plan measures already: its numbers are changed on the plan, not here.
    picks = ("Hire faster", "Increase traffic to the careers microsite")
    plan, measured = sponsor_answers_after_the_champion(page, live_server, invited, database, settings, picks)
    expect(page.locator(".thanks")).to_contain_text(
        "Acme Inc already has a one-page success plan, so your answers did not change it. They are "
        "saved and shared with your customer success team."
    )
    expect(page.locator(".goal")).to_have_text(plan.goal)
    assert fits(page, PHONE["width"])
    shoot(page, "hosted-thanks-second-contact")
    assert [p.id for p in plans(database)] == [plan.id]
    assert objectives_of(database, plan.id) == measured
    page.get_by_role("link", name="Open your plan").click()
    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()


@pytest.mark.browser
def test_a_second_contacts_new_objective_joins_the_plan(
    nojs: Page, live_server: str, invited: Invited, database: Database, settings: Settings
) -> None:
    page = nojs
    picks = ("Keep the people you hire", "Keep the people you cannot afford to lose")
    plan, measured = sponsor_answers_after_the_champion(page, live_server, invited, database, settings, picks)
    expect(page.locator(".thanks")).to_contain_text(
        "We updated Acme Inc’s one-page success plan from your answers:"
    )
    assert [p.id for p in plans(database)] == [plan.id]
    assert objectives_of(database, plan.id) == [*measured, "regrettable_attrition"]
    page.get_by_role("link", name="Open your plan").click()
    expect(page.get_by_text("Keep the people you cannot afford to lose").first).to_be_visible()
    expect(page.get_by_text("Your team (survey answer)").first).to_be_visible()
    assert fits(page, PHONE["width"])
    shoot(page, "hosted-second-contact-plan")
