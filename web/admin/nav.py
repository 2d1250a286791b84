"""The console shell: its navigation (only pages that exist), breadcrumbs, theme, and safe links."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, redirect, request, url_for
from flask_login import current_user
from werkzeug.routing import BuildError
from werkzeug.wrappers.response import Response as BaseResponse

from engine.accounts import Account
from engine.users import Role
from web.admin import bp
from web.admin.auth import safe_next

THEME_COOKIE = "ns_theme"
THEMES = ("light", "dark")
THEME_MAX_AGE = 365 * 24 * 3600


@dataclass(frozen=True)
class NavItem:
    """One entry of the console's navigation: the first of `endpoints` that exists is linked."""

    label: str
    section: str
    endpoints: tuple[str, ...]
    roles: tuple[Role, ...] = tuple(Role)


NAV: tuple[NavItem, ...] = (
    NavItem("Dashboard", "dashboard", ("admin.dashboard",)),
    NavItem("Accounts", "accounts", ("admin.accounts",)),
    NavItem("Surveys", "surveys", ("admin.surveys",)),
    NavItem("Rules", "rules", ("admin.rules",)),
    NavItem("Plans", "plans", ("admin.plans",)),
    NavItem("Campaigns", "campaigns", ("admin.campaigns",)),
    NavItem("Content", "content", ("admin.content",)),
    NavItem("Reports", "reports", ("admin.reports",)),
    NavItem("Settings", "settings", ("admin.settings", "admin.people")),
)


Crumb = tuple[str, str | None]  # (label, url); the page itself has no url


def breadcrumbs(*trail: Crumb) -> list[Crumb]:
    """A page's breadcrumbs (`render_template(breadcrumbs=…)`): the dashboard, then `trail`, which
    ends with the page itself. A page that sits under another section's page (a campaign's step,
    a contact of an account) passes the whole way down, so the trail leads back up through it."""
    return [("Dashboard", url_for("admin.dashboard")), *trail]


def account_crumbs(account: Account, *trail: Crumb) -> list[Crumb]:
    """Breadcrumbs of Account 360 (no `trail`), or of a page that belongs to the account (its plan,
    a contact, the re-run): back up through the account."""
    here = url_for("admin.account", account_id=account.id) if trail else None
    return breadcrumbs(("Accounts", url_for("admin.accounts")), (account.name, here), *trail)


@dataclass(frozen=True)
class NavLink:
    label: str
    section: str
    url: str


def nav_links(view_functions: Collection[str], role: Role | None) -> list[NavLink]:
    """The entries whose page exists in this app (colleagues' pages appear as they land) and that
    `role` may open."""
    links = []
    for item in NAV:
        endpoint = next((e for e in item.endpoints if e in view_functions), None)
        if endpoint is None or role is None or role not in item.roles:
            continue
        links.append(NavLink(item.label, item.section, url_for(endpoint)))
    return links


def link_to(endpoint: str, **values: Any) -> str | None:
    """`url_for(endpoint, **values)` when that page exists (and takes those values), else None."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


def first_link(*choices: tuple[str, Mapping[str, Any]]) -> str | None:
    """The first of (endpoint, values) that exists."""
    for endpoint, values in choices:
        found = link_to(endpoint, **values)
        if found is not None:
            return found
    return None


def chosen_theme() -> str | None:
    """ "light" or "dark" when the user picked one (cookie), else None: follow the system."""
    theme = request.cookies.get(THEME_COOKIE)
    return theme if theme in THEMES else None


@bp.app_context_processor
def _shell() -> dict[str, Any]:
    # Templates outside the console (public pages) never read these; computing them is cheap.
    if not request.blueprint or request.blueprint.split(".")[0] != "admin":
        return {}
    role = getattr(current_user, "role", None) if current_user.is_authenticated else None
    return {
        "nav": nav_links(current_app.view_functions, role),
        "theme": chosen_theme(),
        "link_to": link_to,
        "search_url": link_to("admin.search"),
    }


@bp.post("/theme")
def set_theme() -> BaseResponse:
    """The theme toggle without JavaScript: remember the choice and go back where the user was."""
    theme = request.form.get("theme", "")
    back = safe_next(request.form.get("next")) or url_for("admin.dashboard")
    response = redirect(back, 303)
    if theme in THEMES:
        response.set_cookie(
            THEME_COOKIE, theme, max_age=THEME_MAX_AGE, samesite="Lax", path="/admin", httponly=False
        )
    else:
        response.delete_cookie(THEME_COOKIE, path="/admin")
    return response
