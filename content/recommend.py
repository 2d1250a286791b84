"""Next-best content: rank library items for one contact's plan, deterministically, with reasons.

Score (docs/content.md has the table): the plan's next due milestone 5, each of the plan's objectives
3, each outcome those objectives serve 1, the plan's lifecycle stage 2, the contact's role 2. Items the
contact was already sent (ContentSend) or clicked (ContentClick) are left out, as are items that
match nothing. Ties go to the shorter item, then the key, so the same inputs give the same list.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from content.library import best_locale
from content.models import ContentClick, ContentItem, ContentSend
from engine.accounts import Contact
from engine.library import Objective
from engine.plans.models import Milestone, MilestoneStatus, SuccessPlan

WEIGHTS = {"milestone": 5, "objective": 3, "outcome": 1, "stage": 2, "role": 2}
ROLE_NAMES = {
    "exec_sponsor": "executive sponsors",
    "champion": "champions",
    "power_user": "power users",
    "other": "everyone on the team",
}


@dataclass(frozen=True)
class Recommendation:
    item: ContentItem
    score: int
    reasons: list[str] = field(default_factory=list)

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


def next_milestone(plan: SuccessPlan | None) -> Milestone | None:
    """The plan's first milestone (in plan order) that is not achieved."""
    if plan is None:
        return None
    open_ = [m for m in plan.milestones if m.status != MilestoneStatus.ACHIEVED]
    return min(open_, key=lambda m: (m.position, m.due_date, m.id)) if open_ else None


class Recommender:
    """Loads the library once; `recommend` then costs one query per contact (what they have seen)."""

    def __init__(self, session: Session, *, contact_ids: Collection[int] = ()) -> None:
        """With `contact_ids` (a delivery batch), what they have seen is read in one query up front."""
        self.session = session
        self.seen: dict[int, set[int]] = {}
        if contact_ids:
            self.seen = {contact_id: set() for contact_id in contact_ids}
            sent = select(ContentSend.contact_id, ContentSend.content_item_id).where(
                ContentSend.contact_id.in_(self.seen)
            )
            clicked = select(ContentClick.contact_id, ContentClick.content_item_id).where(
                ContentClick.contact_id.in_(self.seen)
            )
            for contact_id, item_id in session.execute(sent.union(clicked)):
                self.seen[contact_id].add(item_id)
        # Bodies are not needed to rank (and are the bulk of a row): loaded only if read.
        self.items = list(
            session.scalars(
                select(ContentItem)
                .options(defer(ContentItem.body), defer(ContentItem.body_html))
                .order_by(ContentItem.id)
            )
        )
        rows = session.execute(select(Objective.key, Objective.outcome_key, Objective.title)).all()
        self.objective_outcomes: dict[str, str] = {key: outcome for key, outcome, _ in rows}
        self.objective_titles: dict[str, str] = {key: title for key, _, title in rows}

    def seen_by(self, contact_id: int) -> set[int]:
        if contact_id in self.seen:
            return self.seen[contact_id]
        sent = select(ContentSend.content_item_id).where(ContentSend.contact_id == contact_id)
        clicked = select(ContentClick.content_item_id).where(ContentClick.contact_id == contact_id)
        return set(self.session.scalars(sent.union(clicked)))

    def recommend(
        self,
        plan: SuccessPlan | None,
        contact: Contact,
        k: int = 3,
        *,
        for_next_milestone: bool = False,
        exclude: Collection[str] = (),
    ) -> list[Recommendation]:
        """The top `k` items for `contact` (in their locale, else the default one), leaving out the
        keys in `exclude` (e.g. the items the same email already lists). With `for_next_milestone`,
        only items tagged with the plan's next milestone, if any are left."""
        seen = self.seen_by(contact.id)
        # a translation of a sent item counts as sent too
        seen_keys = {i.key for i in self.items if i.id in seen} | set(exclude)
        candidates = best_locale((i for i in self.items if i.key not in seen_keys), contact.locale).values()
        milestone = next_milestone(plan)
        objectives = [kr.objective_key for kr in plan.key_results] if plan else []
        outcomes = {self.objective_outcomes[o] for o in objectives if o in self.objective_outcomes}
        stage = (plan.stage if plan and plan.stage else None) or contact.account.lifecycle_stage
        role = contact.role.value if hasattr(contact.role, "value") else str(contact.role)
        ranked: list[Recommendation] = []
        for item in candidates:
            tags = item.tags or {}
            score, reasons = 0, []
            if milestone is not None and milestone.key in (tags.get("milestones") or []):
                score += WEIGHTS["milestone"]
                reasons.append(f"helps with the next milestone, “{milestone.title}”")
            matched = [o for o in objectives if o in (tags.get("objectives") or [])]
            if matched:
                score += WEIGHTS["objective"] * len(matched)
                names = ", ".join(self.objective_titles.get(o, o) for o in matched)
                reasons.append(f"serves the plan's objective{'s' if len(matched) > 1 else ''}: {names}")
            served = sorted(outcomes & set(tags.get("outcomes") or []))
            if served:
                score += WEIGHTS["outcome"] * len(served)
                reasons.append(f"fits the outcome{'s' if len(served) > 1 else ''} {', '.join(served)}")
            if stage and stage in (tags.get("stages") or []):
                score += WEIGHTS["stage"]
                reasons.append(f"made for the {stage} stage")
            if role in (tags.get("roles") or []):
                score += WEIGHTS["role"]
                reasons.append(f"written for {ROLE_NAMES.get(role, role)}")
            if score:
                ranked.append(Recommendation(item, score, reasons))
        if for_next_milestone and milestone is not None:
            focused = [r for r in ranked if milestone.key in ((r.item.tags or {}).get("milestones") or [])]
            ranked = focused or ranked
        ranked.sort(key=lambda r: (-r.score, r.item.minutes, r.item.key))
        return ranked[:k]


def recommend(
    session: Session,
    plan: SuccessPlan | None,
    contact: Contact,
    k: int = 3,
    *,
    for_next_milestone: bool = False,
    exclude: Collection[str] = (),
) -> list[Recommendation]:
    """The top `k` library items for `contact` and their `plan`, each with why (see the module doc)."""
    return Recommender(session).recommend(
        plan, contact, k, for_next_milestone=for_next_milestone, exclude=exclude
    )
