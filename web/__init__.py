"""Web layer: the Flask app factory and its blueprints (api, public); no business rules here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, g
from sqlalchemy.orm import Session

from engine import db, queue
from engine.config import Settings, settings_from_env
from web import converters
from web.wiring import connect_all


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` may carry `SETTINGS` (a Settings) and any Flask config keys."""
    config = dict(config or {})
    settings: Settings = config.pop("SETTINGS", None) or settings_from_env()
    app = Flask(__name__)
    converters.register(app.url_map)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config)
    app.extensions["northstar.settings"] = settings
    database = config.get("DATABASE") or db.Database(settings)
    app.extensions["northstar.db"] = db.configure(database)
    app.extensions["northstar.jobs"] = queue.configure(queue.build_runner(settings))
    connect_all()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from web import (
        admin,
        api,
        campaigns_api,
        contacts_api,
        content_api,
        embed,
        people_api,
        plan_page,
        plans_api,
        problems,
        public,
        ratelimit,
        reports_api,
        rules_api,
        survey_pages,
        surveys_api,
        track,
        webhooks,
    )
    from web.cli import register_commands

    problems.register(app)
    ratelimit.init_app(app, settings)
    app.register_blueprint(api.bp)
    app.register_blueprint(surveys_api.bp)
    app.register_blueprint(rules_api.bp)
    app.register_blueprint(plans_api.bp)
    app.register_blueprint(contacts_api.bp)
    app.register_blueprint(content_api.bp)
    app.register_blueprint(reports_api.bp)
    app.register_blueprint(people_api.bp)
    app.register_blueprint(campaigns_api.bp)
    app.register_blueprint(track.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(plan_page.bp)
    admin.init_app(app)
    app.register_blueprint(survey_pages.bp)
    app.register_blueprint(webhooks.bp)
    register_commands(app)

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            session.close()

    return app
