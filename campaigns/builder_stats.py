"""Live counts for the campaign builder: enrolments per version, step and state, and the published
rules that enrol into a campaign (re-exported by campaigns.builder)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.models import Campaign, Enrollment, EnrollmentState, Step
from engine.rules.models import published_ruleset


@dataclass
class StepCount:
    position: int
    key: str
    kind: str
    config: dict[str, Any]
    by_state: dict[str, int] = field(default_factory=dict)  # where enrolments are (or ended)

    @property
    def here(self) -> int:
        return self.by_state.get("active", 0) + self.by_state.get("waiting", 0)


@dataclass
class VersionStats:
    version: int
    current: bool
    published_at: dt.datetime | None
    note: str
    settings: dict[str, Any]
    steps: list[StepCount]
    by_state: dict[str, int]

    @property
    def running(self) -> int:
        return self.by_state.get("active", 0) + self.by_state.get("waiting", 0)


def campaign_stats(session: Session, campaign: Campaign) -> list[VersionStats]:
    """Every version, newest first, with how many enrolments sit at each step in each state
    (finished ones at the step where they ended; `completed` past the last step)."""
    cells: dict[tuple[int, int, str], int] = {}
    for version, position, raw_state, n in session.execute(
        select(Enrollment.campaign_version, Enrollment.current_step, Enrollment.state, func.count())
        .where(Enrollment.campaign_id == campaign.id)
        .group_by(Enrollment.campaign_version, Enrollment.current_step, Enrollment.state)
    ):
        cells[(int(version), int(position), EnrollmentState(raw_state).value)] = int(n)
    steps: dict[int, list[Step]] = {}
    for step in session.scalars(
        select(Step).where(Step.campaign_id == campaign.id).order_by(Step.version, Step.position)
    ):
        steps.setdefault(step.version, []).append(step)
    found = []
    for row in sorted(campaign.versions, key=lambda v: -v.version):
        counts = [
            StepCount(s.position, s.key, s.kind.value, dict(s.config)) for s in steps.get(row.version, [])
        ]
        totals: dict[str, int] = {}
        for (version, position, state), n in cells.items():
            if version != row.version:
                continue
            totals[state] = totals.get(state, 0) + n
            if 0 <= position < len(counts):
                counts[position].by_state[state] = counts[position].by_state.get(state, 0) + n
        found.append(
            VersionStats(
                row.version,
                row.version == campaign.version,
                row.published_at,
                row.note,
                dict(row.settings or {}),
                counts,
                totals,
            )
        )
    return found


@dataclass(frozen=True)
class EntryRule:
    name: str
    priority: int
    condition: Any


def entry_rules(session: Session, key: str) -> list[EntryRule]:
    """The published rules whose `enroll` action puts accounts into this campaign."""
    ruleset = published_ruleset(session)
    if ruleset is None:
        return []
    return [
        EntryRule(rule.name, rule.priority, rule.condition)
        for rule in sorted(ruleset.rules, key=lambda r: (-r.priority, r.name))
        if any(
            isinstance(a, dict) and a.get("type") == "enroll" and a.get("campaign") == key
            for a in rule.actions
        )
    ]


def stats_document(session: Session, campaign: Campaign) -> dict[str, Any]:
    """The stats as JSON (the API's `GET .../stats`)."""
    return {
        "key": campaign.key,
        "version": campaign.version,
        "paused": campaign.paused,
        "versions": [
            {
                "version": v.version,
                "current": v.current,
                "published_at": v.published_at.isoformat() if v.published_at else None,
                "by_state": v.by_state,
                "steps": [{"key": s.key, "kind": s.kind, "by_state": s.by_state} for s in v.steps],
            }
            for v in campaign_stats(session, campaign)
        ],
    }
