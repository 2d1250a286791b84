"""The console shell on real PostgreSQL: navigation built from the pages that exist, the dashboard at
/admin/ (this week against the week before, each linking to its report), global search (page and
JSON suggestions, bad input refused), the theme toggle without JavaScript, and the skip link."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaigns.models import Message, MessageStatus, WebhookEvent
from content.models import ContentItem, MessageTemplate
from engine.db import Database, utcnow
from engine.plans.models import Milestone, MilestoneStatus
from engine.users import Role
from surveys.models import Channel, Response, ResponseStatus, Survey
from tests.admin_client import csrf_of, make_user, sign_in, signed_in, text_of
from tests.factories import make_account
from tests.test_admin_accounts import EDITOR, Story, build_story
from web.admin.dashboard import no_delivery_events
from web.admin.nav import NAV, nav_links


@pytest.fixture
def story(database: Database, recruiting: dict[str, int]) -> Story:
    return build_story(database)


@pytest.fixture
def editor(client: FlaskClient, database: Database, story: Story) -> FlaskClient:
    return signed_in(client, database, EDITOR, Role.EDITOR)


def nav_of(html: str) -> list[str]:
    block = re.search(r'<nav aria-label="Console" class="console-nav">(.*?)</nav>', html, re.S)
    assert block, "no console navigation"
    return re.findall(r">([^<]+)</a>", block.group(1))


# -- the shell ------------------------------------------------------------------------------------


def test_navigation_lists_only_pages_that_exist_in_the_documented_order(app: Flask) -> None:
    with app.test_request_context("/admin/"):
        every = nav_links(app.view_functions, Role.ADMIN)
        assert [link.label for link in every] == [
            item.label for item in NAV if any(e in app.view_functions for e in item.endpoints)
        ]
        assert {"Dashboard", "Accounts", "Surveys", "Rules", "Plans"} <= {link.label for link in every}
        only_mine = nav_links({"admin.dashboard", "admin.surveys"}, Role.VIEWER)
        assert [(link.label, link.url) for link in only_mine] == [
            ("Dashboard", "/admin/"),
            ("Surveys", "/admin/surveys"),
        ]
        assert nav_links(app.view_functions, None) == []


def test_every_page_shares_the_shell_with_its_section_highlighted(editor: FlaskClient, story: Story) -> None:
    for path, current in (
        ("/admin/", "Dashboard"),
        ("/admin/accounts", "Accounts"),
        (f"/admin/accounts/{story.account_id}", "Accounts"),
        ("/admin/surveys", "Surveys"),
        ("/admin/rules", "Rules"),
        ("/admin/plans", "Plans"),
    ):
        html = text_of(editor.get(path))
        assert nav_of(html)[:2] == ["Dashboard", "Accounts"], path
        assert re.search(rf'aria-current="page">{current}</a>', html), path
        assert html.index('class="skip-link" href="#main"') < html.index("<header")
        assert 'id="main"' in html and 'name="q"' in html and "data-theme-toggle" in html
    account = text_of(editor.get(f"/admin/accounts/{story.account_id}"))
    crumbs = re.search(r'<nav class="crumbs" aria-label="Breadcrumb">(.*?)</nav>', account, re.S)
    assert crumbs and re.findall(r">([^<]+)</(?:a|span)>", crumbs.group(1)) == [
        "Dashboard",
        "Accounts",
        "Acme Inc",
    ]


def crumbs_of(html: str) -> list[tuple[str, str | None]]:
    """The page's breadcrumbs as (label, link); the page itself (last) has no link."""
    found = re.findall(r'<nav class="crumbs" aria-label="Breadcrumb">(.*?)</nav>', html, re.S)
    assert len(found) == 1, f"{len(found)} breadcrumb trails"
    items = re.findall(
        r'<li>(?:<a href="([^"]*)">([^<]*)</a>|<span aria-current="page">([^<]*)</span>)</li>', found[0]
    )
    assert len(items) == found[0].count("<li>"), "a crumb that is neither a link nor the current page"
    assert items and items[-1][2], "the trail does not end with the current page"
    return [(link_label or here, href or None) for href, link_label, here in items]


def test_breadcrumbs_end_with_the_page_and_lead_back_through_its_account(
    client: FlaskClient, database: Database, story: Story
) -> None:
    admin = signed_in(client, database, "ada@northstar.example", Role.ADMIN)
    home = ("Dashboard", "/admin/")
    account = [home, ("Accounts", "/admin/accounts"), ("Acme Inc", f"/admin/accounts/{story.account_id}")]
    camila = ("Camila Ortiz", f"/admin/contacts/{story.camila_id}/audit")
    outcomes = "What does success look like for your team?"
    expected: dict[str, list[tuple[str, str | None]]] = {
        f"/admin/contacts/{story.camila_id}/audit": [*account, (camila[0], None)],
        f"/admin/contacts/{story.camila_id}/privacy": [*account, camila, ("Privacy requests", None)],
        f"/admin/plans/{story.plan_id}": [*account, ("Success plan", None)],
        f"/admin/accounts/{story.account_id}/rerun": [*account, ("Re-run rules", None)],
        "/admin/reports": [home, ("Reports", None)],
        "/admin/reports/outcomes": [home, ("Reports", "/admin/reports"), ("Outcomes and objectives", None)],
        "/admin/content": [home, ("Content", None)],
        "/admin/content/new": [home, ("Content", "/admin/content"), ("New content item", None)],
        "/admin/content/import": [home, ("Content", "/admin/content"), ("Import from CSV", None)],
        "/admin/content/templates": [home, ("Content", "/admin/content"), ("Message templates", None)],
        "/admin/campaigns/new": [home, ("Campaigns", "/admin/campaigns"), ("New campaign", None)],
        "/admin/surveys/outcomes/preview": [
            home,
            ("Surveys", "/admin/surveys"),
            (outcomes, "/admin/surveys/outcomes"),
            ("Preview", None),
        ],
        "/admin/rules/history": [home, ("Rules", "/admin/rules"), ("History", None)],
        "/admin/rules/versions/1": [
            home,
            ("Rules", "/admin/rules"),
            ("History", "/admin/rules/history"),
            ("Version 1", None),
        ],
        "/admin/audit": [home, ("Settings", "/admin/settings"), ("Audit log", None)],
        "/admin/people": [home, ("Settings", "/admin/settings"), ("People", None)],
    }
    with database.session() as session:
        item = session.scalars(select(ContentItem).order_by(ContentItem.id).limit(1)).one()
        template = session.scalars(select(MessageTemplate).order_by(MessageTemplate.id).limit(1)).one()
        templates = [home, ("Content", "/admin/content"), ("Message templates", "/admin/content/templates")]
        expected |= {
            f"/admin/content/{item.id}": [home, ("Content", "/admin/content"), (item.title, None)],
            f"/admin/content/templates/{template.id}": [*templates, (template.key, None)],
            f"/admin/content/templates/{template.id}/preview": [
                *templates,
                (template.key, f"/admin/content/templates/{template.id}"),
                ("Preview", None),
            ],
        }
    nurture = ("Recruiting nurture", "/admin/campaigns/nurture")
    expected |= {
        "/admin/campaigns/nurture": [home, ("Campaigns", "/admin/campaigns"), (nurture[0], None)],
        "/admin/campaigns/nurture/edit": [
            home,
            ("Campaigns", "/admin/campaigns"),
            nurture,
            ("Builder", None),
        ],
        "/admin/surveys/outcomes": [home, ("Surveys", "/admin/surveys"), (outcomes, None)],
    }
    started = admin.post(
        "/admin/rules/draft", data={"csrf_token": csrf_of(text_of(admin.get("/admin/rules")))}
    )
    assert started.status_code == 303
    rules = [home, ("Rules", "/admin/rules")]
    expected |= {
        "/admin/rules/draft": [*rules, ("Draft 2", None)],
        "/admin/rules/draft/rules/new": [*rules, ("Draft 2", "/admin/rules/draft"), ("New rule", None)],
    }
    for path, trail in expected.items():
        response = admin.get(path)
        assert response.status_code == 200, path
        assert crumbs_of(text_of(response)) == trail, path
    # Every other page of the console has one trail too, from the dashboard to itself.
    for path in ("/admin/accounts", "/admin/surveys", "/admin/rules", "/admin/plans", "/admin/campaigns"):
        trail = crumbs_of(text_of(admin.get(path)))
        assert trail[0] == home and len(trail) == 2, path
    assert 'class="crumbs"' not in text_of(admin.get("/admin/"))  # home needs no way back


def test_the_console_home_is_the_dashboard_and_surveys_stay_where_they_were(editor: FlaskClient) -> None:
    home = editor.get("/admin/")
    assert home.status_code == 200 and "<h1>Dashboard</h1>" in text_of(home)
    assert editor.get("/admin/surveys").status_code == 200


def test_the_theme_toggle_works_without_javascript(editor: FlaskClient) -> None:
    page = text_of(editor.get("/admin/accounts"))
    assert "data-theme=" not in page.split("<head>")[0]  # no choice yet: follow the system
    chosen = editor.post(
        "/admin/theme", data={"csrf_token": csrf_of(page), "theme": "dark", "next": "/admin/accounts"}
    )
    assert chosen.status_code == 303 and chosen.headers["Location"] == "/admin/accounts"
    assert "ns_theme=dark" in chosen.headers["Set-Cookie"]
    dark = text_of(editor.get("/admin/accounts"))
    assert '<html lang="en" data-theme="dark">' in dark and 'value="light" data-theme-toggle' in dark
    elsewhere = editor.post(
        "/admin/theme", data={"csrf_token": csrf_of(page), "theme": "purple", "next": "https://evil.example"}
    )
    assert elsewhere.headers["Location"] == "/admin/"  # never off the console; a bad theme resets
    assert '<html lang="en">' in text_of(editor.get("/admin/accounts"))
    assert editor.post("/admin/theme", data={"theme": "dark"}).status_code == 400  # CSRF


# -- search ---------------------------------------------------------------------------------------


def test_search_finds_accounts_contacts_and_campaigns_by_name(editor: FlaskClient, story: Story) -> None:
    html = text_of(editor.get("/admin/search?q=acme"))
    assert 'data-kind="accounts"' in html and f'href="/admin/accounts/{story.account_id}"' in html
    assert 'data-kind="contacts"' in html and f"#contact-{story.camila_id}" in html
    assert "camila@acme.example" in html
    campaigns = text_of(editor.get("/admin/search?q=held+out"))
    assert 'data-kind="campaigns"' in campaigns and "Held out nudge" in campaigns
    nothing = text_of(editor.get("/admin/search?q=zzz-nothing"))
    assert "0 results" in nothing and "Nothing matches" in nothing
    wildcard = text_of(editor.get("/admin/search?q=%25"))  # LIKE wildcards are searched literally
    assert "0 results" in wildcard
    assert "Type what you are looking for." in text_of(editor.get("/admin/search"))


def test_search_says_when_there_are_more_than_it_shows(
    editor: FlaskClient, database: Database, story: Story
) -> None:
    with database.transaction() as session:
        for i in range(25):
            make_account(session, f"manyco-{i:02d}", contacts=())
    html = text_of(editor.get("/admin/search?q=manyco"))
    assert "20+ results for “manyco” (the first 20 of each kind)." in html


def test_search_refuses_bad_input(editor: FlaskClient) -> None:
    too_long = editor.get("/admin/search", query_string={"q": "x" * 201})
    assert too_long.status_code == 400 and "at most 200 characters" in text_of(too_long)
    nul = editor.get("/admin/search?q=a%00b")
    assert nul.status_code == 400 and "NUL" in text_of(nul)
    problem = editor.get("/admin/search/suggest", query_string={"q": "x" * 201})
    assert problem.status_code == 400 and problem.mimetype == "application/problem+json"
    assert problem.get_json()["errors"] == {"q": "Search for at most 200 characters."}


def test_suggestions_are_json_with_links(editor: FlaskClient, story: Story) -> None:
    found = editor.get("/admin/search/suggest?q=cam").get_json()
    assert found["query"] == "cam" and found["all"] == "/admin/search?q=cam"
    assert {"kind": "contacts", "label": "Camila Ortiz"}.items() <= found["results"][0].items()
    assert found["results"][0]["url"] == f"/admin/accounts/{story.account_id}#contact-{story.camila_id}"
    assert editor.get("/admin/search/suggest?q=c").get_json()["results"] == []  # 2 characters first


def test_search_needs_a_signed_in_user(client: FlaskClient) -> None:
    assert client.get("/admin/search?q=acme").status_code == 303
    assert client.get("/admin/search/suggest?q=acme").status_code == 303


# -- the dashboard --------------------------------------------------------------------------------


def figure(html: str, key: str) -> str:
    match = re.search(rf'data-figure="{key}">.*?<span class="dash-n" data-value>([^<]*)</span>', html, re.S)
    assert match, key
    return match.group(1)


def trend(html: str, key: str) -> str:
    match = re.search(rf'data-figure="{key}">.*?data-trend="(\w+)"', html, re.S)
    assert match, key
    return match.group(1)


def email_beside(held: Message, status: MessageStatus, dedupe_key: str, sent_at: dt.datetime) -> Message:
    """An email to the held-out nudge's contact, for the same step, sent at `sent_at`."""
    return Message(
        enrollment_id=held.enrollment_id,
        step_id=held.step_id,
        contact_id=held.contact_id,
        channel="email",
        status=status,
        dedupe_key=dedupe_key,
        created_at=sent_at,
        sent_at=sent_at,
        trace={},
    )


def test_the_dashboard_counts_this_week_against_the_week_before(
    editor: FlaskClient, database: Database, story: Story
) -> None:
    clock = utcnow()
    this_week, last_week = clock - dt.timedelta(days=2), clock - dt.timedelta(days=9)
    with database.transaction() as session:
        version = session.scalars(select(Survey)).first().versions[0]  # type: ignore[union-attr]
        for i, when in enumerate([this_week, this_week, this_week, last_week]):
            session.add(
                Response(
                    survey_version_id=version.id,
                    account_id=story.account_id,
                    client_response_id=f"dash-{i}",
                    channel=Channel.IN_APP,
                    status=ResponseStatus.COMPLETED,
                    created_at=when,
                    completed_at=when,
                )
            )
        first = session.scalars(select(Milestone).order_by(Milestone.id)).first()
        assert first is not None
        first.status, first.achieved_at = MilestoneStatus.ACHIEVED, this_week
        second = session.scalars(select(Milestone).order_by(Milestone.id).offset(1)).first()
        assert second is not None
        second.status = MilestoneStatus.BEHIND
        # The held-out nudge was skipped this week; pretend a second message went out and bounced.
        held = session.scalars(select(Message)).one()
        held.created_at = this_week
        sent = email_beside(held, MessageStatus.BOUNCED, "dash-sent", this_week)
        session.add(sent)
        session.flush()
        session.add(
            WebhookEvent(
                provider_event_id="sg-1", event="spamreport", message_id=sent.id, received_at=this_week
            )
        )
    html = text_of(editor.get("/admin/"))
    assert figure(html, "surveys_completed") == "3" and trend(html, "surveys_completed") == "better"
    assert "up 2 from 1" in html
    assert figure(html, "plans_at_risk") == "1"
    assert figure(html, "milestones_achieved") == "1"
    assert figure(html, "sent") == "1" and figure(html, "skipped") == "1"
    assert trend(html, "skipped") == "worse"  # more skips is not good news: said in words too
    assert figure(html, "bounced_rate") == "100.0%" and figure(html, "spam_rate") == "100.0%"
    assert figure(html, "delivered_rate") == "0.0%"
    assert "Acme Inc" in html.split("Accounts to look at first")[1]  # the plan behind is listed
    # Each card links to its report when the report pages exist, else to the list it counts.
    links = re.findall(r'<p class="tile-link"><a href="([^"]+)"', html)
    assert len(links) == 5 and all(link.startswith("/admin/") for link in links)


def test_delivery_rates_without_any_delivery_event_are_unknown_not_zero(
    editor: FlaskClient, database: Database, story: Story
) -> None:
    """Emails went out, and nothing (no SendGrid event webhook here) says how they fared."""
    this_week = utcnow() - dt.timedelta(days=1)
    with database.transaction() as session:
        held = session.scalars(select(Message)).one()
        session.add(email_beside(held, MessageStatus.SENT, "dash-untracked", this_week))
    html = text_of(editor.get("/admin/"))
    for key in ("delivered_rate", "bounced_rate", "spam_rate"):
        assert figure(html, key) == "—", key
    assert "not tracked: set up SendGrid&#39;s event webhook" in html
    assert no_delivery_events("outbox", None).startswith("not tracked: mail goes to the outbox")
    assert no_delivery_events("sendgrid", "key").startswith("no delivery events from SendGrid yet")


def test_an_empty_dashboard_renders_with_dashes_and_what_to_do(
    client: FlaskClient, database: Database, recruiting: dict[str, int]
) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    sign_in(client, EDITOR)
    html = text_of(client.get("/admin/"))
    assert figure(html, "surveys_completed") == "0" and figure(html, "delivered_rate") == "—"
    assert "No plan is at risk." in html and "See every plan" in html


def test_message_timestamps_are_bounded_to_the_last_two_weeks(
    editor: FlaskClient, database: Database, story: Story
) -> None:
    with database.transaction() as session:
        session.execute(update(Message).values(created_at=utcnow() - dt.timedelta(days=30)))
    assert figure(text_of(editor.get("/admin/")), "skipped") == "0"
