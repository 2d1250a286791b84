"""Enrolling a segment on real PostgreSQL, Redis and RQ: the counts, idempotency, the pause and the
holdout in the domain; the job run by an RQ worker (continuing in a new job past its share); and
the console's preview → confirm flow, which only editors may use and which refuses bad input."""

from __future__ import annotations

import datetime as dt
import html as markup
import re
from collections.abc import Callable

import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns import builder, jobs
from campaigns.enrollment import enroll_account, get_campaign
from campaigns.guards import held_out
from campaigns.models import Enrollment
from campaigns.segment_enrollment import (
    Segment,
    SegmentPreview,
    enroll_segment,
    preview_segment,
    record_queued,
)
from engine import audit
from engine.accounts import Account
from engine.db import Database
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.playbook import import_playbook, resolve_playbook
from engine.users import Role
from tests.admin_client import console_user, csrf_of, signed_in, text_of
from tests.factories import make_account

NOW = dt.datetime.now(dt.UTC)
EDITOR = "erin@northstar.example"
VIEWER = "victor@northstar.example"

editor = console_user("editor", EDITOR, Role.EDITOR)


@pytest.fixture
def starters(database: Database, recruiting: dict[str, int]) -> list[int]:
    """Five starter accounts (two of them in adoption), two enterprise ones; the first starter is
    already in `survey_invite`."""
    with database.transaction() as session:
        ids = []
        for i in range(5):
            account = make_account(session, f"starter-{i}", contacts=())
            account.lifecycle_stage = "adoption" if i < 2 else "onboarding"
            ids.append(account.id)
        for i in range(2):
            make_account(session, f"big-{i}", segment="enterprise", contacts=())
        session.flush()
        enroll_account(session, ids[0], "survey_invite", now=NOW, reason="console: first")
    return ids


def enrolled(database: Database, key: str = "survey_invite") -> dict[str, Enrollment]:
    """External id → enrolment in campaign `key`."""
    with database.session() as session:
        campaign_id = get_campaign(session, key).id
        rows = session.execute(
            select(Account.external_id, Enrollment)
            .join(Enrollment, Enrollment.account_id == Account.id)
            .where(Enrollment.campaign_id == campaign_id)
        )
        return {external_id: enrollment for external_id, enrollment in rows}


# -- the domain ------------------------------------------------------------------------------------


def test_a_segment_is_enrolled_in_batches_and_already_enrolled_accounts_are_counted(
    database: Database, starters: list[int]
) -> None:
    with database.session() as session:
        preview = preview_segment(session, "survey_invite", Segment("starter"), now=NOW)
    assert (preview.matched, preview.already_enrolled, preview.to_enroll) == (5, 1, 4)

    result = enroll_segment(
        database,
        "survey_invite",
        Segment("starter"),
        now=NOW,
        reason="console: erin (segment starter)",
        batch_size=2,
    )

    assert (result.matched, result.enrolled, result.already_enrolled, result.refused) == (5, 4, 1, 0)
    rows = enrolled(database)
    assert sorted(rows) == [f"starter-{i}" for i in range(5)]  # no enterprise account
    assert rows["starter-0"].history[0]["reason"] == "console: first"  # left as it was
    assert rows["starter-3"].history[0]["reason"] == "console: erin (segment starter)"


def test_enrolling_a_segment_twice_enrols_no_one_twice(database: Database, starters: list[int]) -> None:
    first = enroll_segment(database, "survey_invite", Segment("starter"), now=NOW, reason="once")
    again = enroll_segment(database, "survey_invite", Segment("starter"), now=NOW, reason="twice")

    assert (first.enrolled, again.enrolled, again.already_enrolled) == (4, 0, 5)
    assert all(e.entry == 1 and len(e.history) == 1 for e in enrolled(database).values())
    with database.session() as session:
        assert preview_segment(session, "survey_invite", Segment("starter"), now=NOW).to_enroll == 0


def test_a_lifecycle_stage_narrows_the_segment(database: Database, starters: list[int]) -> None:
    result = enroll_segment(database, "survey_invite", Segment("starter", "adoption"), now=NOW, reason="r")

    assert (result.matched, result.enrolled, result.already_enrolled) == (2, 1, 1)
    assert sorted(enrolled(database)) == ["starter-0", "starter-1"]


def test_a_paused_campaign_enrols_no_one_from_a_segment(database: Database, starters: list[int]) -> None:
    with database.transaction() as session:
        builder.set_paused(session, "survey_invite", True)
    with database.session() as session, pytest.raises(Conflict):
        preview_segment(session, "survey_invite", Segment("starter"), now=NOW)

    result = enroll_segment(database, "survey_invite", Segment("starter"), now=NOW, reason="r")

    assert (result.matched, result.enrolled, result.refused) == (5, 0, 5)
    assert sorted(enrolled(database)) == ["starter-0"]


def test_a_segment_respects_the_campaigns_holdout(database: Database, recruiting: dict[str, int]) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    document["campaigns"].append(
        {
            "key": "half_held",
            "name": "Half held out",
            "holdout_percent": 50,
            "steps": [{"key": "hello", "kind": "email", "template": "next_step", "to": ["champion"]}],
        }
    )
    with database.transaction() as session:
        import_playbook(session, yaml.safe_dump(document))
        for i in range(20):
            make_account(session, f"starter-{i}", contacts=())

    result = enroll_segment(database, "half_held", Segment("starter"), now=NOW, reason="r")

    rows = enrolled(database, "half_held").values()
    assert result.enrolled == 20
    assert all(e.held_out == held_out(e.account_id, "half_held", 50) for e in rows)
    assert {e.held_out for e in rows} == {True, False}  # the stable share, as for one account


def test_unknown_segment_stage_or_campaign_is_refused(database: Database, starters: list[int]) -> None:
    with database.session() as session:
        with pytest.raises(ValidationFailed) as refused:
            preview_segment(session, "survey_invite", Segment("nobody", "later"), now=NOW)
        assert set(refused.value.errors) == {"segment", "stage"}
        with pytest.raises(NotFound):
            preview_segment(session, "no_such_campaign", Segment("starter"), now=NOW)


# -- the job ---------------------------------------------------------------------------------------


def test_the_job_enrols_the_segment_in_a_worker_and_continues_past_its_share(
    database: Database, starters: list[int], run_worker: Callable[[], bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import queue

    monkeypatch.setattr(jobs, "SEGMENT_JOB_ACCOUNTS", 2)  # three jobs: 2 + 2 + 1 accounts
    queue.current().enqueue("default", jobs.enroll_segment_job, "survey_invite", "starter", None, EDITOR)
    assert run_worker()

    rows = enrolled(database)
    assert sorted(rows) == [f"starter-{i}" for i in range(5)]
    assert rows["starter-4"].history[0]["reason"] == f"console: {EDITOR} (segment starter)"
    assert not run_worker()  # the continuations ran: nothing is left queued

    queue.current().enqueue("default", jobs.enroll_segment_job, "survey_invite", "starter", None, EDITOR)
    assert run_worker()  # the same job again: safe, it enrols no one twice
    assert all(e.entry == 1 and len(e.history) == 1 for e in enrolled(database).values())


# -- the console -----------------------------------------------------------------------------------


def test_editor_previews_then_confirms_and_a_worker_enrols_the_segment(
    editor: FlaskClient, database: Database, starters: list[int], run_worker: Callable[[], bool]
) -> None:
    page = text_of(editor.get("/admin/campaigns/survey_invite"))
    assert "Enrol a segment" in page and '<option value="enterprise">' in page

    preview = editor.get("/admin/campaigns/survey_invite/enroll-segment?segment=starter&stage=")
    body = markup.unescape(text_of(preview))
    assert preview.status_code == 200
    assert "5 accounts match, 1 already enrolled." in " ".join(
        body.replace("<strong>", "").replace("</strong>", "").split()
    )
    assert enrolled(database).keys() == {"starter-0"}  # a preview changes nothing

    confirmed = editor.post(
        "/admin/campaigns/survey_invite/enroll-segment",
        data={"csrf_token": csrf_of(body), "segment": "starter", "stage": "", "confirm": "enroll"},
    )
    assert confirmed.status_code == 303 and confirmed.headers["Location"].endswith(
        "/admin/campaigns/survey_invite"
    )
    flashed = markup.unescape(text_of(editor.get(confirmed.headers["Location"])))
    assert "Enrolling 4 accounts in Outcomes survey invitation in the background" in flashed
    run = re.search(r'<li data-segment-run="(\w+)">(.*?)</li>', flashed, re.S)
    assert run, flashed
    assert "<b>starter</b>" in run.group(2) and EDITOR in run.group(2)
    assert "running</span> 4 to enrol" in " ".join(run.group(2).split())

    assert run_worker()
    rows = enrolled(database)
    assert len(rows) == 5 and rows["starter-2"].history[0]["reason"] == f"console: {EDITOR} (segment starter)"
    # The totals are on the campaign's page (and in the audit log), not only in the worker's log.
    page = text_of(editor.get("/admin/campaigns/survey_invite"))
    done = re.search(rf'<li data-segment-run="{run.group(1)}">(.*?)</li>', page, re.S)
    assert done and "done</span> 4 enrolled, 1 already in it" in " ".join(done.group(1).split())
    with database.session() as session:
        logged = session.execute(
            select(audit.AuditEntry.action, audit.AuditEntry.actor).where(
                audit.AuditEntry.action.in_(("enrol", "enrolled"))
            )
        ).all()
    assert sorted(logged) == [("enrol", EDITOR), ("enrolled", EDITOR)]  # the audit log shows both


def test_a_run_whose_job_never_reports_back_says_so(
    editor: FlaskClient, database: Database, starters: list[int]
) -> None:
    with database.transaction() as session, audit.acting_as(EDITOR, "console"):
        campaign = builder.require_campaign(session, "survey_invite")
        record_queued(session, campaign.id, Segment("starter"), SegmentPreview(5, 1), run="lost")
        entry = session.scalars(select(audit.AuditEntry).where(audit.AuditEntry.action == "enrol")).one()
        entry.at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    page = " ".join(text_of(editor.get("/admin/campaigns/survey_invite")).split())
    assert 'no result</span> <span class="small">The job never reported back.' in page


def test_bad_input_gets_a_page_that_says_what_is_wrong(
    editor: FlaskClient, database: Database, starters: list[int]
) -> None:
    base = "/admin/campaigns/survey_invite/enroll-segment"
    unknown = editor.get(f"{base}?segment=nobody")
    assert unknown.status_code == 422 and "No account is in a segment called" in markup.unescape(
        text_of(unknown)
    )
    assert editor.get(f"{base}?segment=starter&stage=later").status_code == 422
    assert editor.get(f"{base}?segment=").status_code == 422
    assert editor.get("/admin/campaigns/no_such/enroll-segment?segment=starter").status_code == 404

    token = csrf_of(text_of(editor.get(f"{base}?segment=starter")))
    posted = editor.post(base, data={"csrf_token": token, "segment": "nobody", "confirm": "enroll"})
    assert posted.status_code == 422
    unconfirmed = editor.post(base, data={"csrf_token": token, "segment": "starter"})
    assert unconfirmed.status_code == 400 and "confirm" in text_of(unconfirmed)
    assert editor.post(base, data={"segment": "starter", "confirm": "enroll"}).status_code == 400  # no CSRF

    with database.transaction() as session:
        builder.set_paused(session, "survey_invite", True)
    paused = editor.post(base, data={"csrf_token": token, "segment": "starter", "confirm": "enroll"})
    assert paused.status_code == 409 and "is paused" in text_of(paused)
    assert editor.get(f"{base}?segment=starter").status_code == 409
    assert enrolled(database).keys() == {"starter-0"}


def test_a_viewer_sees_no_form_and_cannot_enrol_a_segment(
    client: FlaskClient, database: Database, starters: list[int]
) -> None:
    viewer = signed_in(client, database, VIEWER, Role.VIEWER)
    page = text_of(viewer.get("/admin/campaigns/survey_invite"))
    assert "Enrol a segment" not in page

    base = "/admin/campaigns/survey_invite/enroll-segment"
    assert viewer.get(f"{base}?segment=starter").status_code == 403
    refused = viewer.post(base, data={"csrf_token": csrf_of(page), "segment": "starter", "confirm": "enroll"})
    assert refused.status_code == 403
    assert enrolled(database).keys() == {"starter-0"}
