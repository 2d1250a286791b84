"""One recipient's values for a composed email's tokens: who they are, their plan, their tracked
content links and their recommended item. Delivery, the admin preview and test sends share this."""

from __future__ import annotations

from dataclasses import dataclass

from content.emails import ComposedEmail, content_url_path
from content.models import ContentItem
from content.recommend import Recommendation, next_milestone
from content.tracking import click_url
from engine.accounts import Account, Contact
from engine.plans.models import SuccessPlan
from engine.plans.sharing import plan_token


@dataclass(frozen=True)
class Links:
    """Where links point and the key that signs them."""

    public_url: str
    secret_key: str


def recipient_values(
    contact: Contact,
    account: Account,
    plan: SuccessPlan | None,
    *,
    links: Links,
    unsubscribe_url: str,
    email: ComposedEmail,
    message_id: int | None,
    recommended: Recommendation | None = None,
    fallback: ContentItem | None = None,
) -> dict[str, str]:
    """Token path → value. `recommended` falls back to `fallback` (the step's first item), then to
    the plan page, so an email that asks for a recommendation never shows an empty link."""
    milestone = next_milestone(plan)
    values = {
        "contact.first_name": contact.first_name,
        "contact.name": contact.name or contact.first_name,
        "contact.email": contact.email,
        "account.name": account.name,
        "plan.goal": plan.goal if plan else "",
        "plan.url": f"{links.public_url}/p/{plan_token(links.secret_key, plan)}"
        if plan
        else links.public_url,
        "plan.review_date": plan.review_date.strftime("%B %d, %Y") if plan else "",
        "next_milestone.title": milestone.title if milestone else "",
        "next_milestone.due_date": milestone.due_date.strftime("%B %d") if milestone else "",
        "unsubscribe_url": unsubscribe_url,
    }
    for index, item_id in enumerate(email.content_ids):
        values[content_url_path(index)] = click_url(links.public_url, links.secret_key, item_id, message_id)
    if email.uses_recommended:
        item = recommended.item if recommended else fallback
        if item is not None:
            values.update(
                {
                    "recommended.title": item.title,
                    "recommended.url": click_url(links.public_url, links.secret_key, item.id, message_id),
                    "recommended.summary": item.summary,
                    "recommended.minutes": str(item.minutes),
                    "recommended.kind": item.kind,
                    "recommended.why": recommended.why if recommended else "",
                }
            )
        else:
            values.update(
                {
                    "recommended.title": "Your success plan",
                    "recommended.url": values["plan.url"],
                    "recommended.summary": "",
                    "recommended.minutes": "",
                    "recommended.kind": "",
                    "recommended.why": "",
                }
            )
    return values
