"""The console's report pages over HTTP on real PostgreSQL: the six cards, one report with filters,
charts and tables, field-level messages for bad filters (never a 500), CSV, viewers can read."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaigns.digests import DigestPreference
from campaigns.models import Campaign
from engine.accounts import Account
from engine.db import Database
from engine.reports import REPORT_NAMES
from engine.users import Role
from tests.admin_client import csrf_of, signed_in, text_of
from tests.test_admin_plans import make_plan
from web.admin import reports as admin_reports

VIEWER = "vera@northstar.example"
EDITOR = "erin@northstar.example"


@pytest.fixture
def viewer(client: FlaskClient, database: Database, recruiting: dict[str, int]) -> FlaskClient:
    make_plan(database, "acme")
    make_plan(database, "globex", segment="enterprise", stage="adoption")
    make_plan(database, "initech")
    return signed_in(client, database, VIEWER, Role.VIEWER)


def test_index_shows_the_six_reports_as_cards_with_headline_numbers(viewer: FlaskClient) -> None:
    page = viewer.get("/admin/reports")
    html = text_of(page)
    assert page.status_code == 200
    cards = re.findall(r'data-report="([a-z-]+)"', html)
    assert cards == list(REPORT_NAMES)
    assert 'href="/admin/reports/plan-adoption"' in html
    assert html.count("<dt>") >= 6  # every card carries its headline numbers


def test_a_report_shows_its_charts_with_the_numbers_in_a_table(viewer: FlaskClient) -> None:
    page = viewer.get("/admin/reports/plan-adoption?segment=starter")
    html = text_of(page)
    assert page.status_code == 200, html
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="ns-chart' in html
    assert 'role="img"' in html and "<desc id=" in html
    assert re.search(r'<th scope="row">[^<]+</th><td class="num">', html)  # the chart's table
    assert '<option value="starter" selected>' in html  # the form shows the filter it ran with
    csv_link = re.search(r'href="(/admin/reports/plan-adoption\.csv\?[^"]+)"', html)
    assert csv_link and "segment=starter" in csv_link.group(1)


def test_csv_download_uses_the_same_filters(viewer: FlaskClient) -> None:
    response = viewer.get("/admin/reports/plan-adoption.csv?segment=starter&from=2026-01-01&to=2026-12-31")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert 'filename="plan-adoption_2026-01-01_2026-12-31.csv"' in response.headers["Content-Disposition"]
    assert response.get_data(as_text=True).splitlines()[0].count(",") >= 1


BAD_FILTERS = [
    ("from=2026-05-01&to=2026-04-01", "from", "must be on or before"),
    ("from=2020-01-01&to=2026-01-01", "to", "at most 2 years"),
    ("from=yesterday", "from", "is not a date"),
    ("segment=nonesuch", "segment", "unknown segment"),
    ("group_by=colour", "group_by", "unsupported grouping"),
    ("trait=plan_size", "trait", "Enter the value the trait"),
    ("trait_value=big", "trait", "Choose which trait"),
    ("trait.nonesuch=1", "trait", "unknown trait"),
    ("from=9999-12-31&to=9999-12-31", "to", "out of range"),
]


def test_holdout_lift_without_any_holdout_says_so_and_points_to_the_holdout_setting(
    viewer: FlaskClient, database: Database
) -> None:
    html = text_of(viewer.get("/admin/reports/holdout-lift"))
    assert "No campaign holds anyone out" in html and "No data for these filters" not in html
    assert "set Holdout to a share such as 10 %" in html and 'href="/admin/campaigns"' in html
    assert "Nothing to compare: no campaign holds any accounts out" in html  # the report's note
    one = text_of(viewer.get("/admin/reports/holdout-lift?campaign=nurture"))
    assert "The campaign nurture holds no one out" in one and 'href="/admin/campaigns/nurture"' in one
    with database.transaction() as session:  # nurture's current version holds 10 % out
        campaign = session.scalars(select(Campaign).where(Campaign.key == "nurture")).one()
        version = next(v for v in campaign.versions if v.version == campaign.version)
        version.settings = {**version.settings, "holdout_percent": 10}
    assert "holds no one out" not in text_of(viewer.get("/admin/reports/holdout-lift?campaign=nurture"))
    assert "No campaign holds anyone out" not in text_of(viewer.get("/admin/reports/holdout-lift"))
    other = text_of(viewer.get("/admin/reports/holdout-lift?campaign=survey_invite"))
    assert "The campaign survey_invite holds no one out" in other


def test_an_editor_is_pointed_at_the_campaigns_holdout_field(
    client: FlaskClient, database: Database, recruiting: dict[str, int]
) -> None:
    signed_in(client, database, EDITOR, Role.EDITOR)
    html = text_of(client.get("/admin/reports/holdout-lift?campaign=nurture"))
    assert 'href="/admin/campaigns/nurture/edit#holdout_percent"' in html
    assert 'id="holdout_percent"' in text_of(client.get("/admin/campaigns/nurture/edit"))
    make_plan(database, "acme")
    with database.transaction() as session:  # the global holdout group holds accounts out of all
        session.execute(update(Account).values(holdout_group=True))
    assert "holds no one out" not in text_of(client.get("/admin/reports/holdout-lift?campaign=nurture"))


def test_bad_filters_show_the_form_with_field_messages(viewer: FlaskClient) -> None:
    for query, field, message in BAD_FILTERS:
        page = viewer.get(f"/admin/reports/milestones?{query}")
        html = text_of(page)
        assert page.status_code == 400, query
        error = re.search(rf'<span class="field-error" id="{field}-error">([^<]+)</span>', html)
        assert error and message in error.group(1), (query, html)
        assert f'aria-describedby="{field}-error"' in html
        assert "<svg" not in html


def test_unknown_reports_parameters_and_csv_links_are_refused_cleanly(viewer: FlaskClient) -> None:
    page = viewer.get("/admin/reports/outcomes?colour=red")
    assert page.status_code == 400
    assert "colour: unknown filter" in text_of(page)
    page = viewer.get("/admin/reports/nonesuch")
    assert page.status_code == 404
    assert "There is no report called" in text_of(page)
    response = viewer.get("/admin/reports/outcomes.csv?from=2026-05-01&to=2026-04-01")
    assert response.status_code == 303  # a hand-edited CSV link leads back to the form and its messages
    assert response.headers["Location"].startswith("/admin/reports/outcomes?")


def test_a_large_report_runs_as_a_job_with_a_progress_bar(
    viewer: FlaskClient, run_worker: Callable[[], bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_reports, "INLINE_MAX_ACCOUNTS", 0)  # every data set counts as large
    started = viewer.get("/admin/reports/milestones?segment=starter")
    assert started.status_code == 303
    location = started.headers["Location"]
    assert "segment=starter" in location and "job=" in location
    waiting = text_of(viewer.get(location))
    assert "data-report-job" in waiting and "<progress" in waiting
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in waiting  # no-JS fallback
    status_url = re.search(r'data-status-url="([^"]+)"', waiting)
    assert status_url
    assert viewer.get(status_url.group(1)).get_json() == {"state": "queued", "progress": 0.0}

    run_worker()

    assert viewer.get(status_url.group(1)).get_json() == {"state": "finished", "progress": 1.0}
    done = text_of(viewer.get(location))
    assert "data-report-job" not in done and 'class="ns-chart' in done
    csv_link = re.search(r'href="(/admin/reports/milestones\.csv\?[^"]+)"', done)
    assert csv_link and "job=" in csv_link.group(1)
    csv = viewer.get(csv_link.group(1).replace("&amp;", "&"))
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    # With a large data set the index runs nothing: it shows what the last default run left.
    default_run = viewer.get("/admin/reports/milestones").headers["Location"]
    run_worker()
    assert "data-report-job" not in text_of(viewer.get(default_run))
    index = text_of(viewer.get("/admin/reports"))
    assert index.count("Open the report to compute its numbers") == len(REPORT_NAMES) - 1
    assert "<dt>Plans started</dt>" in index
    expired = viewer.get("/admin/reports/milestones?job=nonesuch")
    assert expired.status_code == 400
    assert "That report run has expired" in text_of(expired)


def test_editors_turn_their_weekly_digest_on_and_off_viewers_cannot(
    viewer: FlaskClient, app: Flask, database: Database
) -> None:
    index = text_of(viewer.get("/admin/reports"))
    assert 'id="digest"' in index and "needs the editor or admin role" in index
    assert viewer.post("/admin/reports/digest", data={"csrf_token": csrf_of(index)}).status_code == 403

    editor = signed_in(app.test_client(), database, EDITOR, Role.EDITOR)
    index = text_of(editor.get("/admin/reports"))
    assert '<input type="checkbox" name="segment" value="starter">' in index
    assert editor.post("/admin/reports/digest", data={"segment": "starter"}).status_code == 400  # no CSRF
    token = csrf_of(index)
    done = editor.post("/admin/reports/digest", data={"csrf_token": token, "segment": "starter"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/reports#digest")
    page = text_of(editor.get("/admin/reports"))
    assert "You will get the weekly digest every Monday for starter." in page
    assert '<input type="checkbox" name="segment" value="starter" checked>' in page
    refused = editor.post("/admin/reports/digest", data={"csrf_token": token, "segment": "nonesuch"})
    assert refused.status_code == 303
    assert "There is no segment &#39;nonesuch&#39; any more" in text_of(editor.get("/admin/reports"))
    with database.session() as session:
        assert [p.segments for p in session.scalars(select(DigestPreference))] == [["starter"]]
    editor.post("/admin/reports/digest", data={"csrf_token": token, "action": "stop"})
    assert "You will not get the weekly digest any more." in text_of(editor.get("/admin/reports"))
    with database.session() as session:
        assert session.scalars(select(DigestPreference)).all() == []


def test_reports_need_a_signed_in_user(client: FlaskClient) -> None:
    response = client.get("/admin/reports")
    assert response.status_code in (302, 303)
    assert "/admin/login" in response.headers["Location"]
