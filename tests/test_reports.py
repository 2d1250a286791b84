"""Segment reports, the contract: filters and their validation, filter options, statistics, CSV."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from engine.errors import NotFound, ValidationFailed
from engine.reports import filter_options, parse_filters, run_report, to_csv
from engine.reports.stats import newcombe_difference, quantile, wilson

# JUNE, World and build_world are imported from here by tests/test_api_reports.py too.
from tests.reports_world import JUNE, TODAY, World, build_world, june


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


# --- filters --------------------------------------------------------------------------------------


def test_filters_default_to_the_last_90_days() -> None:
    filters = parse_filters({}, today=TODAY)
    assert (filters.start, filters.end) == (TODAY - dt.timedelta(days=89), TODAY)
    assert filters.traits == () and filters.group_by is None


def test_filters_read_traits_and_grouping() -> None:
    filters = parse_filters({**JUNE, "trait.industry": "staffing", "group_by": "trait.industry"}, today=TODAY)
    assert filters.traits == (("industry", "staffing"),)
    assert filters.group_by == "trait.industry"
    assert parse_filters(filters.as_params(), today=TODAY) == filters


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"from": "2026-07-01", "to": "2026-06-01"}, "from", "on or before"),
        ({"from": "2023-01-01", "to": "2026-06-01"}, "to", "2 years"),
        ({"from": "June 1st"}, "from", "not a date"),
        ({"group_by": "colour"}, "group_by", "unsupported grouping"),
        ({"stage": "teenage"}, "stage", "unknown lifecycle stage"),
        ({"sgement": "starter"}, "sgement", "unknown filter"),
        ({"trait.a b": "x"}, "trait.a b", "trait names"),
    ],
)
def test_bad_filters_name_the_field(params: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        parse_filters(params, today=TODAY)
    assert words in failed.value.errors[field]


def test_filters_that_do_not_match_the_data_are_refused(world: World, db: Session) -> None:
    cases = [
        ({"segment": "galactic"}, "segment", "unknown segment"),
        ({"trait.size": "big"}, "trait.size", "unknown trait"),
        ({"group_by": "trait.size"}, "group_by", "unknown trait"),
        ({"campaign": "nope"}, "campaign", "unknown campaign"),
        ({"group_by": "channel"}, "group_by", "cannot be grouped by 'channel'"),
    ]
    for params, field, words in cases:
        with pytest.raises(ValidationFailed) as failed:
            run_report(db, "milestones", june(**params))
        assert words in failed.value.errors[field], params


def test_an_unknown_report_is_not_found(db: Session) -> None:
    with pytest.raises(NotFound):
        run_report(db, "churn", june())


def test_filter_options_list_what_exists(world: World, db: Session) -> None:
    options = filter_options(db)
    assert options["segments"] == ["enterprise", "starter"]
    assert options["campaigns"] == ["onboard"]
    assert options["traits"] == ["industry"]
    assert "trait.industry" in options["group_by"] and "onboarding" in options["stages"]


# --- statistics and CSV ----------------------------------------------------------------------------


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80, method 10.
    diff = newcombe_difference(56, 70, 48, 80)
    assert diff is not None
    assert [round(v, 4) for v in diff] == [0.2, 0.0524, 0.3339]
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert quantile([4.0, 10.0, 20.0], 0.75) == 15.0


def test_csv_has_labels_and_plain_numbers(world: World, db: Session) -> None:
    text = to_csv(run_report(db, "plan-adoption", june(group_by="segment")))
    lines = text.splitlines()
    assert lines[0] == (
        "Segment,Plans created,Shared page opened,Opened %,"
        "Customer updated,Updated %,Review confirmed,Reviewed %"
    )
    assert lines[1] == "enterprise,1,0,0.0000,1,1.0000,0,0.0000"
    assert lines[-1].startswith("all,4,1,0.2500")
