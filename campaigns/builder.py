"""The campaign builder: a campaign's draft edited as one document (with a version check on every
save), validated with the playbook's checks, published as a new version; pause/resume.
Live enrolment counts and entry rules live in campaigns.builder_stats (re-exported here)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import ForeignKey, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

# Re-exported: the console, the API and the tests use builder.campaign_stats and friends.
from campaigns.builder_stats import EntryRule as EntryRule
from campaigns.builder_stats import StepCount as StepCount
from campaigns.builder_stats import VersionStats as VersionStats
from campaigns.builder_stats import campaign_stats as campaign_stats
from campaigns.builder_stats import entry_rules as entry_rules
from campaigns.builder_stats import stats_document as stats_document
from campaigns.models import Campaign, CampaignVersion, Enrollment, EnrollmentState, StepKind
from campaigns.playbook import (
    SETTINGS,
    CampaignSchema,
    StepSchema,
    _check_references,  # the playbook import's template/content/milestone/survey checks, reused
    campaign_settings,
    current_settings,
    flow_errors,
    publish_version,
)
from engine.db import Base, utcnow
from engine.errors import Conflict, NotFound, ValidationFailed, flatten_messages
from engine.library import Objective
from engine.plans.models import PlanTemplate
from engine.rules.catalogue import catalogue, check_condition

KEY = re.compile(r"^[a-z][a-z0-9_\-]{0,79}$")
MAX_NOTE = 2000


class CampaignDraft(Base):
    """The one draft of a campaign: the whole document (name, steps, settings) as ops edit it.
    A campaign never published yet exists only as its draft (`campaign_id` is null)."""

    __tablename__ = "campaign_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), unique=True
    )
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    based_on_version: Mapped[int] = mapped_column(default=0)  # 0: a campaign never published
    revision: Mapped[int] = mapped_column(default=1)  # +1 on every save: with the version, the etag
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(320))


class StaleDraft(Conflict):
    """The save was based on an older draft or version than the one stored now."""

    title = "Stale draft"


@dataclass
class DraftView:
    """What an editor starts from: the draft, or (without one) the current version as a draft."""

    key: str
    document: dict[str, Any]
    etag: str
    based_on_version: int
    has_draft: bool
    campaign: Campaign | None
    updated_at: dt.datetime | None = None
    updated_by: str | None = None


def etag(based_on_version: int, revision: int) -> str:
    return f"{based_on_version}.{revision}"


def document_of(campaign: Campaign) -> dict[str, Any]:
    """A published version as the builder edits it (the playbook's campaign shape)."""
    return {
        "key": campaign.key,
        "name": campaign.name,
        "description": campaign.description,
        "steps": [{"key": s.key, "kind": s.kind.value, **s.config} for s in campaign.steps],
        **current_settings(campaign),
    }


def find_campaign(session: Session, key: str) -> Campaign | None:
    return session.scalar(select(Campaign).where(Campaign.key == key))


def _draft_row(session: Session, key: str, *, lock: bool = False) -> CampaignDraft | None:
    stmt = select(CampaignDraft).where(CampaignDraft.key == key)
    return session.scalar(stmt.with_for_update() if lock else stmt)


def get_draft(session: Session, key: str) -> DraftView:
    campaign = find_campaign(session, key)
    row = _draft_row(session, key)
    if row is not None:
        return DraftView(
            key,
            dict(row.document),
            etag(row.based_on_version, row.revision),
            row.based_on_version,
            True,
            campaign,
            row.updated_at,
            row.updated_by,
        )
    if campaign is None:
        raise NotFound(f"no campaign {key!r}")
    return DraftView(key, document_of(campaign), etag(campaign.version, 0), campaign.version, False, campaign)


def create_campaign(
    session: Session, key: str, name: str, description: str = "", *, user: str | None, now: dt.datetime
) -> DraftView:
    """A new campaign, as a draft with no steps yet; nothing can enrol in it until it is published."""
    errors: dict[str, str] = {}
    if not KEY.match(key):
        errors["key"] = "lower-case letters, digits, '-' and '_', starting with a letter (at most 80)"
    elif find_campaign(session, key) is not None or _draft_row(session, key) is not None:
        errors["key"] = f"a campaign {key!r} already exists"
    if not name.strip() or len(name) > 200:
        errors["name"] = "a name of 1 to 200 characters"
    if len(description) > 2000:
        errors["description"] = "at most 2,000 characters"
    if errors:
        raise ValidationFailed(errors)
    document = {"key": key, "name": name.strip(), "description": description.strip(), "steps": []}
    session.add(
        CampaignDraft(
            key=key, document=document, based_on_version=0, created_at=now, updated_at=now, updated_by=user
        )
    )
    session.flush()
    return get_draft(session, key)


def _check_fresh(session: Session, key: str, expected: str, row: CampaignDraft | None) -> Campaign | None:
    """Raise StaleDraft unless `expected` is the etag of what is stored now."""
    campaign = find_campaign(session, key)
    if row is not None:
        current = etag(row.based_on_version, row.revision)
        who = f" ({row.updated_by})" if row.updated_by else ""
        detail = f"someone else saved this draft{who} since you opened it"
    elif campaign is not None:
        current = etag(campaign.version, 0)
        detail = f"version {campaign.version} was published since you opened this draft"
    else:
        raise NotFound(f"no campaign {key!r}")
    if expected != current:
        raise StaleDraft(
            f"{detail}: reload it to see the latest, then make your change again", extra={"etag": current}
        )
    return campaign


def save_draft(
    session: Session, key: str, document: Any, *, expected: str, user: str | None, now: dt.datetime
) -> DraftView:
    """Store the document as the campaign's draft if it is valid and `expected` is the etag it was
    based on (else StaleDraft: nothing is overwritten). Invalid: ValidationFailed, keyed by field."""
    row = _draft_row(session, key, lock=True)
    campaign = _check_fresh(session, key, expected, row)
    normalized, errors = validate_document(session, document, key=key)
    if errors:
        raise ValidationFailed(errors)
    if row is None:
        assert campaign is not None
        if _unchanged(campaign, normalized) and _same_words(campaign, normalized):
            return get_draft(session, key)  # the form sent back as it was: no draft to start
        row = CampaignDraft(key=key, campaign_id=campaign.id, based_on_version=campaign.version, revision=0)
        row.created_at = now
        session.add(row)
    row.document = normalized
    row.revision += 1
    row.updated_at, row.updated_by = now, user
    session.flush()
    return get_draft(session, key)


def discard_draft(session: Session, key: str) -> bool:
    """Drop the draft; a campaign never published goes with it. False if there was none."""
    row = _draft_row(session, key, lock=True)
    if row is None:
        return False
    session.execute(delete(CampaignDraft).where(CampaignDraft.id == row.id))
    session.expunge(row)
    return True


def publish_draft(
    session: Session, key: str, *, expected: str | None, note: str, user: str | None, now: dt.datetime
) -> CampaignVersion:
    """Publish the draft as the campaign's next version (running enrolments keep theirs). A draft
    that changes only the name or description updates them and returns the current version."""
    row = _draft_row(session, key, lock=True)
    if row is None:
        if find_campaign(session, key) is None:
            raise NotFound(f"no campaign {key!r}")
        raise Conflict("there is no draft to publish: edit the campaign first")
    stored = etag(row.based_on_version, row.revision)
    campaign = _check_fresh(session, key, stored if expected is None else expected, row)
    if campaign is not None and campaign.version != row.based_on_version:
        raise StaleDraft(
            f"version {campaign.version} was published after this draft started from version "
            f"{row.based_on_version}: discard the draft and edit the new version",
            extra={"etag": etag(row.based_on_version, row.revision)},
        )
    normalized, errors = validate_document(session, row.document, key=key)
    if errors:
        raise ValidationFailed(errors, "the draft cannot be published: " + _first(errors))
    if campaign is None:
        campaign = Campaign(key=key, name=normalized["name"], version=0)
        session.add(campaign)
    elif _unchanged(campaign, normalized):
        # Only the name or description changed (or nothing): no new version for running accounts.
        campaign.name, campaign.description = normalized["name"], normalized.get("description", "")
        session.execute(delete(CampaignDraft).where(CampaignDraft.id == row.id))
        session.expunge(row)
        session.flush()
        return next(v for v in campaign.versions if v.version == campaign.version)
    campaign.name, campaign.description = normalized["name"], normalized.get("description", "")
    steps = [
        (s["key"], StepKind(s["kind"]), {k: v for k, v in s.items() if k not in ("key", "kind")})
        for s in normalized["steps"]
    ]
    settings = {name: normalized[name] for name in SETTINGS if name in normalized}
    text = note.replace("\x00", "").strip()[:MAX_NOTE]
    if user:
        text = f"{text} ({user})" if text else f"published by {user}"
    version = publish_version(session, campaign, steps, settings, now=now, note=text)
    session.execute(delete(CampaignDraft).where(CampaignDraft.id == row.id))
    session.expunge(row)
    session.flush()
    return version


def _unchanged(campaign: Campaign, normalized: dict[str, Any]) -> bool:
    """The document has the current version's steps and settings (its words may differ)."""
    current = [(s.key, s.kind.value, _comparable(s.config)) for s in campaign.steps]
    wanted = [(s["key"], s["kind"], _comparable(s)) for s in normalized["steps"]]
    return bool(current == wanted and current_settings(campaign) == campaign_settings(normalized))


def _comparable(step: dict[str, Any]) -> dict[str, Any]:
    """A step's settings, with its recipients as a set (their order means nothing)."""
    found = {k: v for k, v in step.items() if k not in ("key", "kind")}
    if isinstance(found.get("to"), list):
        found["to"] = sorted(found["to"])
    return found


def _same_words(campaign: Campaign, normalized: dict[str, Any]) -> bool:
    return bool(
        campaign.name == normalized["name"] and campaign.description == normalized.get("description", "")
    )


def set_paused(session: Session, key: str, paused: bool) -> Campaign:
    """Paused: nobody is enrolled (rules, triggers, console, API) and no enrolment advances or has a
    deferred message released until it is resumed; then each carries on from where it stood."""
    campaign = require_campaign(session, key)
    campaign.paused = paused
    session.flush()
    return campaign


# -- validation -------------------------------------------------------------------------------------


def validate_document(
    session: Session, document: Any, *, key: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the document as stored, errors): errors map `name`, `steps.<i>.<field>`,
    `steps.<i>.condition/<pointer>`, `exit_when.condition/<pointer>`, `send_window.<field>`... to a
    message; {} when it can be published."""
    if not isinstance(document, dict):
        return {}, {"": "a campaign is a JSON object"}
    raw = dict(document)
    if key is not None:
        if raw.get("key") not in (None, key):
            return {}, {"key": f"the key is {key!r}: a campaign's key never changes"}
        raw["key"] = key
    steps = raw.get("steps")
    if isinstance(steps, list):
        raw["steps"] = _named_steps(steps)
    errors: dict[str, str] = {}
    loaded: dict[str, Any] = {}
    try:
        loaded = CampaignSchema().load(raw)
    except ValidationError as exc:
        errors.update(flatten(exc.messages))
    raw_steps = raw["steps"] if isinstance(raw.get("steps"), list) else []
    if errors:  # the schema stops before the flow check when a field is wrong: run it anyway
        for i, fields in flow_errors(_flow_view(raw_steps)).items():
            for name, messages in fields.items():
                errors.setdefault(f"steps.{i}.{name}", " ".join(messages))
    errors.update(_condition_errors(session, raw, raw_steps))
    checked = [_loaded_step(step) for step in raw_steps]
    try:
        _check_references(session, 0, checked)
    except ValidationFailed as exc:
        for path, message in exc.errors.items():
            found = re.match(r"campaigns\[0\]\.steps\[(\d+)\]\.(\w+)$", path)
            if found:
                errors.setdefault(f"steps.{found[1]}.{found[2]}", str(message))
    errors.update(_other_references(session, raw, checked, errors))
    if errors:
        return {}, errors
    return compact(loaded), {}


def compact(loaded: dict[str, Any]) -> dict[str, Any]:
    """A loaded campaign as stored: steps without empty fields, only the settings that are set."""
    steps = [
        {
            "key": s["key"],
            "kind": s["kind"],
            **{k: v for k, v in s.items() if k not in ("key", "kind") and v not in (None, [])},
        }
        for s in loaded["steps"]
    ]
    return {
        "key": loaded["key"],
        "name": loaded["name"],
        "description": loaded.get("description") or "",
        "steps": steps,
        **campaign_settings(loaded),
    }


def _named_steps(steps: list[Any]) -> list[Any]:
    """Steps without a key get `<kind>_<n>` (unique), so branches and timeouts can name them."""
    taken = {s["key"] for s in steps if isinstance(s, dict) and isinstance(s.get("key"), str) and s["key"]}
    named = []
    for n, step in enumerate(steps, start=1):
        if isinstance(step, dict) and not step.get("key"):
            base = str(step.get("kind") or "step") if KEY.match(str(step.get("kind") or "")) else "step"
            candidate, extra = f"{base}_{n}", 1
            while candidate in taken:
                extra += 1
                candidate = f"{base}_{n}_{extra}"
            taken.add(candidate)
            step = {**step, "key": candidate}
        named.append(step)
    return named


def _flow_view(steps: list[Any]) -> list[dict[str, Any]]:
    """Steps reduced to what the flow check reads, whatever else is wrong with them."""
    kinds = {k.value for k in StepKind}
    view = []
    for step in steps:
        step = step if isinstance(step, dict) else {}
        kind = step["kind"] if isinstance(step.get("kind"), str) and step["kind"] in kinds else "email"
        item: dict[str, Any] = {
            "kind": kind,
            "key": step.get("key") if isinstance(step.get("key"), str) else None,
        }
        for name in ("then", "else", "on_timeout"):
            if isinstance(step.get(name), str) and step[name]:
                item[name] = step[name]
        view.append(item)
    return view


def _loaded_step(step: Any) -> dict[str, Any]:
    """One step as the schema loads it, or a step with nothing to look up if it does not load."""
    try:
        found: dict[str, Any] = StepSchema().load(step)
        return found
    except (ValidationError, TypeError):
        return {"kind": "exit"}


def _condition_errors(session: Session, raw: dict[str, Any], steps: list[Any]) -> dict[str, str]:
    """Branch and exit conditions against the rules' field catalogue (JSON pointers below each)."""
    found: dict[str, str] = {}
    known = catalogue(session)
    for i, step in enumerate(steps):
        if isinstance(step, dict) and step.get("condition") is not None:
            found.update(check_condition(known, step["condition"], pointer=f"steps.{i}.condition"))
    exit_when = raw.get("exit_when")
    if isinstance(exit_when, dict) and exit_when.get("condition") is not None:
        found.update(check_condition(known, exit_when["condition"], pointer="exit_when.condition"))
    return found


def _other_references(
    session: Session, raw: dict[str, Any], steps: list[dict[str, Any]], errors: dict[str, str]
) -> dict[str, str]:
    found: dict[str, str] = {}
    objectives = set(session.scalars(select(Objective.key)))
    for i, step in enumerate(steps):
        if step.get("kr") and step["kr"] not in objectives and f"steps.{i}.kr" not in errors:
            found[f"steps.{i}.kr"] = f"no objective {step['kr']!r}: a key result is named by its objective"
    trigger = raw.get("trigger")
    if isinstance(trigger, dict) and isinstance(trigger.get("milestone"), str) and trigger["milestone"]:
        milestones = {m["key"] for t in session.scalars(select(PlanTemplate)) for m in t.milestones}
        if trigger["milestone"] not in milestones:
            found["trigger.milestone"] = f"no plan template has a milestone {trigger['milestone']!r}"
    return found


def flatten(messages: Any, path: str = "") -> dict[str, str]:
    """marshmallow's nested messages as {"steps.1.template": "..."} (see `flatten_messages`)."""
    return flatten_messages(messages, path)


def _first(errors: dict[str, str]) -> str:
    path, message = next(iter(errors.items()))
    return f"{path}: {message}" if path else message


# -- what the console shows -------------------------------------------------------------------------


@dataclass
class CampaignSummary:
    key: str
    name: str
    version: int  # 0: never published
    paused: bool
    has_draft: bool
    counts: dict[str, int]

    @property
    def status(self) -> str:
        if self.version == 0:
            return "draft"
        return "paused" if self.paused else "live"

    @property
    def enrolled(self) -> int:
        return self.counts.get("active", 0) + self.counts.get("waiting", 0)


def campaign_summaries(session: Session) -> list[CampaignSummary]:
    counts: dict[int, dict[str, int]] = {}
    for campaign_id, state, n in session.execute(
        select(Enrollment.campaign_id, Enrollment.state, func.count()).group_by(
            Enrollment.campaign_id, Enrollment.state
        )
    ):
        counts.setdefault(campaign_id, {})[EnrollmentState(state).value] = int(n)
    drafts = {row.key: row for row in session.scalars(select(CampaignDraft))}
    found = [
        CampaignSummary(c.key, c.name, c.version, c.paused, c.key in drafts, counts.get(c.id, {}))
        for c in session.scalars(select(Campaign).order_by(Campaign.name))
    ]
    found += [
        CampaignSummary(d.key, str(d.document.get("name") or d.key), 0, False, True, {})
        for d in drafts.values()
        if d.campaign_id is None
    ]
    return sorted(found, key=lambda s: s.name.lower())


def require_campaign(session: Session, key: str) -> Campaign:
    campaign = find_campaign(session, key)
    if campaign is None:
        if _draft_row(session, key) is not None:
            raise Conflict(f"campaign {key!r} is not published yet: publish its draft first")
        raise NotFound(f"no campaign {key!r}")
    return campaign
