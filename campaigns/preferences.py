"""Email categories a contact can turn off or on (the preference page behind every unsubscribe link).

A category is a campaign version's `category` setting (default `nurture`). Its label and one-line
description come from the campaign settings `category_label` / `category_description` when a
playbook sets them, else from the defaults below, else from the category key and campaign names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.models import Campaign, CampaignVersion
from engine.accounts import Contact
from engine.errors import ValidationFailed

DEFAULT_CATEGORY = "nurture"
# Human words for the categories the bundled playbooks use; a playbook may override them.
CATEGORY_DEFAULTS: dict[str, tuple[str, str]] = {
    "nurture": (
        "Tips and next steps",
        "Ideas and how-tos for reaching the goals in your success plan.",
    ),
    "plan_reviews": (
        "Plan review reminders",
        "A reminder a week before each review of your success plan.",
    ),
    "announcements": ("Product news", "New features that help with your goals."),
}
MAX_CATEGORIES = 100


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    description: str
    campaigns: tuple[str, ...]  # campaign names, for the fallback description and the console


def email_categories(session: Session, *, also: Iterable[str] = ()) -> list[Category]:
    """Every category of the workspace's campaigns (their current versions), plus `also` (the
    categories a contact already turned off, so they can turn them back on after a rename)."""
    names: dict[str, list[str]] = {}
    labels: dict[str, tuple[str | None, str | None]] = {}
    rows = session.execute(
        select(Campaign.name, CampaignVersion.settings)
        .join(
            CampaignVersion,
            (CampaignVersion.campaign_id == Campaign.id) & (CampaignVersion.version == Campaign.version),
        )
        .order_by(Campaign.id)
    )
    for name, settings in rows:
        settings = settings or {}
        key = str(settings.get("category") or DEFAULT_CATEGORY)
        names.setdefault(key, []).append(name)
        label, description = settings.get("category_label"), settings.get("category_description")
        if label or description:
            known = labels.get(key, (None, None))
            labels[key] = (known[0] or label, known[1] or description)
    for key in also:
        names.setdefault(str(key), [])
    found = [_category(key, campaigns, *labels.get(key, (None, None))) for key, campaigns in names.items()]
    return sorted(found, key=lambda c: (c.key != DEFAULT_CATEGORY, c.label.lower()))


def _category(key: str, campaigns: list[str], label: str | None, description: str | None) -> Category:
    default_label, default_description = CATEGORY_DEFAULTS.get(key, (None, None))
    fallback = f"Emails such as: {', '.join(campaigns)}." if campaigns else "Emails we no longer send."
    return Category(
        key=key,
        label=label or default_label or key.replace("_", " ").capitalize(),
        description=description or default_description or fallback,
        campaigns=tuple(campaigns),
    )


def set_categories(session: Session, contact: Contact, receive: Iterable[str], shown: Iterable[str]) -> bool:
    """The contact keeps receiving the categories in `receive` and turns off the rest of `shown`
    (the categories the page listed; others they turned off stay off). True when this changed."""
    shown_set, receive_set = set(shown), set(receive)
    unknown = sorted(receive_set - shown_set)
    if unknown:
        raise ValidationFailed({"category": f"unknown category {unknown[0][:40]!r}"})
    before = sorted(set(contact.unsubscribed_categories or []))
    kept_off = {c for c in before if c not in shown_set}
    after = sorted(kept_off | (shown_set - receive_set))
    if after == before:
        return False
    contact.unsubscribed_categories = after  # a new list: JSON columns track assignment, not mutation
    session.flush()
    return True
