"""The CS-ops admin console (`/admin`): sign-in, roles, CSRF, surveys, rules, plans, contact audits."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("admin", __name__, url_prefix="/admin")


def init_app(app: Flask) -> None:
    # Imported here so their views attach to `bp` before it is registered.
    from web.admin import (  # noqa: F401
        account_actions,
        accounts,
        auth,
        campaign_segments,
        campaigns,
        contacts,
        content,
        content_templates,
        dashboard,
        nav,
        people,
        plans,
        privacy,
        reports,
        rules,
        search,
        surveys,
    )

    auth.init_app(app)
    app.register_blueprint(bp)
