"""Content library admin: items (CRUD, search, filters, CSV import); templates live in
web.admin.content_templates."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import select

from content.csvimport import COLUMNS, ImportReport, apply_import, plan_import
from content.library import ItemFilter, delete_item, known_tags, save_item, search_items
from content.models import DEFAULT_LOCALE, ContentItem
from content.schemas import (
    KIND_LABELS,
    ROLES,
    STAGES,
    TAG_GROUPS,
    ContentItemSchema,
)
from engine.errors import ValidationFailed
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.admin.nav import Crumb, breadcrumbs
from web.api import field_errors
from web.context import db_session, unit_of_work

PER_PAGE = 25
MAX_CSV_BYTES = 5_000_000
IMPORT_PAGE = "Import from CSV"


def form_errors(exc: ValidationFailed | ValidationError) -> dict[str, str]:
    if isinstance(exc, ValidationError):
        return field_errors(exc.messages)
    return {name: str(message) for name, message in exc.errors.items()}


def form_page(
    page: str, typed: dict[str, Any], errors: dict[str, str], status: int, /, **context: Any
) -> Any:
    """An item's or a template's edit form: what was typed, what was wrong with it, and whether
    the signed-in user may save it."""
    return (
        render_template(
            page, section="content", typed=typed, errors=errors, can_edit=current_user.can_edit, **context
        ),
        status,
    )


def content_crumbs(*trail: Crumb) -> list[Crumb]:
    """Breadcrumbs of a page in Content: the library, then `trail` (ending with the page)."""
    return breadcrumbs(("Content", url_for("admin.content") if trail else None), *trail)


# -- items -----------------------------------------------------------------------------------------


@bp.get("/content")
@role_required(*ANY_ROLE)
def content() -> Any:
    session = db_session()
    args = request.args
    values = {
        name: args.get(name, "").strip()[:200] for name in ("q", "kind", "locale", "stage", "role", "outcome")
    }
    page_text = args.get("page", "1")
    page = int(page_text) if page_text.isdigit() and len(page_text) < 7 and int(page_text) > 0 else 1
    chosen = ItemFilter(
        search=values["q"] or None,
        kind=values["kind"] or None,
        locale=values["locale"] or None,
        stage=values["stage"] or None,
        role=values["role"] or None,
        outcome=values["outcome"] or None,
    )
    found = search_items(session, chosen, page=page, per_page=PER_PAGE)
    locales = sorted(set(session.scalars(select(ContentItem.locale).distinct())))
    known = known_tags(session)

    def page_url(number: int) -> str:
        kept: dict[str, Any] = {k: v for k, v in values.items() if v}
        return url_for("admin.content", **kept, page=number)

    return render_template(
        "admin/content.html",
        section="content",
        breadcrumbs=content_crumbs(),
        found=found,
        filters=values,
        filtered=any(values.values()),
        kinds=KIND_LABELS,
        stages=STAGES,
        roles=ROLES,
        outcomes=sorted(known.groups["outcomes"]),
        locales=locales,
        page_url=page_url,
        any_items=session.scalar(select(ContentItem.id).limit(1)) is not None,
    )


def _item_form_data() -> dict[str, Any]:
    form = request.form
    data: dict[str, Any] = {
        name: form.get(name, "").strip() for name in ("key", "kind", "title", "summary", "locale", "minutes")
    }
    data["body"] = form.get("body", "").replace("\r\n", "\n")
    data["url"] = form.get("url", "").strip() or None
    data["locale"] = data["locale"] or DEFAULT_LOCALE
    data["minutes"] = data["minutes"] or "5"
    data["tags"] = {group: [v for v in form.getlist(group) if v] for group in TAG_GROUPS}
    return data


def _item_page(
    item: ContentItem | None, typed: dict[str, Any], errors: dict[str, str], status: int = 200
) -> Any:
    known = known_tags(db_session())
    options = {
        "outcomes": sorted(known.groups["outcomes"]),
        "objectives": sorted(known.groups["objectives"]),
        "milestones": sorted(known.groups["milestones"]),
        "stages": list(STAGES),
        "roles": list(ROLES),
    }
    return form_page(
        "admin/content_item.html",
        typed,
        errors,
        status,
        breadcrumbs=content_crumbs((item.title if item else "New content item", None)),
        item=item,
        kinds=KIND_LABELS,
        tag_options=options,
    )


def _item_typed(item: ContentItem | None) -> dict[str, Any]:
    if item is None:
        return {"key": "", "kind": "article", "title": "", "url": "", "summary": "", "body": "", "minutes": 5,
                "locale": DEFAULT_LOCALE, "tags": {g: [] for g in TAG_GROUPS}}  # fmt: skip
    return {
        "key": item.key,
        "kind": item.kind,
        "title": item.title,
        "url": item.url or "",
        "summary": item.summary,
        "body": item.body,
        "minutes": item.minutes,
        "locale": item.locale,
        "tags": {g: list((item.tags or {}).get(g) or []) for g in TAG_GROUPS},
    }


@bp.route("/content/new", methods=["GET", "POST"])
@role_required(*EDITORS)
def content_new() -> Any:
    if request.method == "GET":
        return _item_page(None, _item_typed(None), {})
    return _save_item_form(None)


@bp.route("/content/<int:item_id>", methods=["GET", "POST"])
@role_required(*ANY_ROLE)
def content_item(item_id: int) -> Any:
    item = db_session().get(ContentItem, item_id)
    if item is None:
        abort(404, description="There is no such content item (it may have been deleted).")
    if request.method == "GET":
        return _item_page(item, _item_typed(item), {})
    if not current_user.can_edit:
        abort(403)
    return _save_item_form(item)


def _save_item_form(item: ContentItem | None) -> Any:
    typed = _item_form_data()
    try:
        data = ContentItemSchema().load(typed)
        with unit_of_work() as session:
            saved = save_item(session, data, item_id=item.id if item else None)
            saved_id, key = saved.id, saved.key
    except (ValidationError, ValidationFailed) as exc:
        shown = {**typed, "minutes": typed["minutes"]}
        return _item_page(item, shown, form_errors(exc), 422)
    flash(f"Saved “{key}”.", "ok")
    return redirect(url_for("admin.content_item", item_id=saved_id), 303)


@bp.post("/content/<int:item_id>/delete")
@role_required(*EDITORS)
def content_delete(item_id: int) -> Any:
    with unit_of_work() as session:
        key = delete_item(session, item_id)
    flash(
        f"Deleted “{key}”. Campaign steps that name it will fail to send until they name another item.", "ok"
    )
    return redirect(url_for("admin.content"), 303)


# -- CSV import ------------------------------------------------------------------------------------


@bp.route("/content/import", methods=["GET", "POST"])
@role_required(*EDITORS)
def content_import() -> Any:
    if request.method == "GET":
        return render_template(
            "admin/content_import.html",
            section="content",
            breadcrumbs=content_crumbs((IMPORT_PAGE, None)),
            report=None,
            csv_text="",
            columns=COLUMNS,
        )
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        raw = upload.read(MAX_CSV_BYTES + 1)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return _import_page(
                None, "", "The file is not UTF-8 text. Save the CSV as UTF-8 and try again.", 422
            )
    else:
        text = request.form.get("csv", "")
    if not text.strip():
        return _import_page(None, "", "Choose a CSV file (or paste its text) first.", 422)
    if request.form.get("action") == "apply":
        try:
            with unit_of_work() as session:  # every row, or none
                report = apply_import(session, text)
        except ValidationFailed:
            report, _ = plan_import(db_session(), text)
            return _import_page(report, text, "Nothing was imported: fix these rows and try again.", 422)
        flash(f"Imported: {report.summary()}.", "ok")
        return redirect(url_for("admin.content"), 303)
    report, _ = plan_import(db_session(), text)
    return _import_page(report, text, None, 200 if report.ok else 422)


def _import_page(report: ImportReport | None, text: str, notice: str | None, status: int) -> Any:
    page = render_template(
        "admin/content_import.html",
        section="content",
        breadcrumbs=content_crumbs((IMPORT_PAGE, None)),
        report=report,
        csv_text=text,
        notice=notice,
        columns=COLUMNS,
    )
    return page, status
