"""The console's report pages over HTTP on real PostgreSQL: the six cards, one report with filters,
charts and tables, field-level messages for bad filters (never a 500), CSV, viewers can read."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from engine.db import Database
from engine.reports import REPORT_NAMES
from engine.users import Role
from tests.test_admin_plans import make_plan
from tests.test_admin_surveys import make_user, sign_in, text_of

VIEWER = "vera@northstar.example"


@pytest.fixture
def viewer(client: FlaskClient, database: Database, recruiting: dict[str, int]) -> FlaskClient:
    make_plan(database, "acme")
    make_plan(database, "globex", segment="enterprise", stage="adoption")
    make_plan(database, "initech")
    make_user(database, VIEWER, Role.VIEWER)
    assert sign_in(client, VIEWER).status_code == 303
    return client


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
]


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


def test_reports_need_a_signed_in_user(client: FlaskClient) -> None:
    response = client.get("/admin/reports")
    assert response.status_code in (302, 303)
    assert "/admin/login" in response.headers["Location"]
