"""`python -m bench content`: the cost of rendering one email and of one recommend() call.

Render: the recruiting playbook's `welcome_plan` template, as composition does it for a batch —
body rendered twice (HTML and text tokens), subject and preheader, in the bounded sandbox
(`content.templates.render_string`), then placed in the base layout with css-inline and turned into
the plain-text part. Baseline in the same run: the same body rendered once by a plain, unsandboxed
`jinja2.Environment(autoescape=True)`. Reference rows split the cost (sandbox only, css-inline only).

recommend(): one call for a contact with an active plan over the recruiting library plus N extra
generated items on PostgreSQL (`--database-url`, dropped and recreated);
baseline in the same run: a bare `SELECT` of the library rows (the least a recommendation
must read).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from jinja2 import Environment
from sqlalchemy import select

from bench.common import add_service_arguments, bench_env, machine, print_table, result_line
from content.emails import email_page, placeholders, text_token
from content.models import ContentItem, ContentSend
from content.plaintext import html_to_text
from content.recommend import recommend
from content.templates import SAMPLE_ITEM, render_string
from engine.playbook import resolve_playbook

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/northstar_bench_content"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_service_arguments(parser)
    parser.set_defaults(database_url=os.environ.get("BENCH_CONTENT_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--renders", type=int, default=2000, help="emails rendered (%(default)s)")
    parser.add_argument("--calls", type=int, default=300, help="recommend() calls (%(default)s)")
    parser.add_argument("--items", type=int, default=500, help="extra library items (%(default)s)")


def _per_call_us(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(50, n)):
        fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return 1e6 * (time.perf_counter() - started) / n


def _welcome_template() -> tuple[str, str, str]:
    import yaml

    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    found = next(t for t in document["templates"] if t["key"] == "welcome_plan")
    return found["subject"], found["preheader"], found["body"]


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    subject, preheader, body = _welcome_template()
    html_context = {
        **placeholders(lambda p: f"%ns:{p}%"),
        "content": [SAMPLE_ITEM] * 3,
        "campaign": {"name": "Bench"},
    }
    text_context = {**placeholders(text_token), "content": [SAMPLE_ITEM] * 3, "campaign": {"name": "Bench"}}

    def full() -> str:
        body_html = render_string(body, html_context, field="body")
        body_text = render_string(body, text_context, field="body")
        subject_ = render_string(subject, text_context, field="subject", html=False)
        pre = render_string(preheader, text_context, field="preheader", html=False)
        page = email_page(subject=subject_, preheader=pre, body=body_html, postal="1 Harbour St")
        return page + html_to_text(body_text)

    plain = Environment(autoescape=True).from_string(body)
    sandbox_only_html = render_string(body, html_context, field="body")
    full_us = _per_call_us(full, args.renders)
    plain_us = _per_call_us(lambda: plain.render(html_context), args.renders)
    sandbox_us = _per_call_us(lambda: render_string(body, html_context, field="body"), args.renders)
    inline_us = _per_call_us(
        lambda: email_page(subject="s", preheader="p", body=sandbox_only_html, postal="x"), args.renders
    )
    text_us = _per_call_us(lambda: html_to_text(sandbox_only_html), args.renders)

    with bench_env(args) as env:
        from engine.accounts import ContactRole
        from engine.db import utcnow
        from engine.plans.service import create_plan, get_template
        from tests.factories import make_account

        with env.database.transaction() as session:
            for i in range(args.items):
                session.add(
                    ContentItem(
                        key=f"bench-{i}",
                        kind="article",
                        title=f"Bench item {i}",
                        url=f"https://x.example/{i}",
                        minutes=1 + i % 20,
                        locale="en" if i % 4 else "de",
                        tags={
                            "outcomes": ["hire_faster"] if i % 3 == 0 else [],
                            "objectives": ["time_to_fill"] if i % 5 == 0 else [],
                            "milestones": ["first_applications"] if i % 7 == 0 else [],
                            "stages": ["onboarding"] if i % 2 else ["adoption"],
                            "roles": ["champion"] if i % 2 == 0 else ["power_user"],
                        },
                    )
                )
            account = make_account(
                session, "bench", contacts=(("bench@bench.example", ContactRole.CHAMPION),)
            )
            plan = create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=utcnow())
            contact = account.contacts[0]
            contact_id, plan_id = contact.id, plan.id
        with env.database.session() as session:
            from engine.accounts import Contact
            from engine.plans.models import SuccessPlan

            reader = session.get(Contact, contact_id)
            plan_row = session.get(SuccessPlan, plan_id)
            assert reader is not None and plan_row is not None
            top = recommend(session, plan_row, reader, 5)
            print("top 5 for the bench contact:")
            for r in top:
                print(f"  {r.score:>3}  {r.item.key:<40} {r.why[:70]}")
            recommend_us = _per_call_us(lambda: recommend(session, plan_row, reader, 5), args.calls)
            select_us = _per_call_us(lambda: list(session.scalars(select(ContentItem))), args.calls)
            library = len(list(session.scalars(select(ContentItem.id))))
            sends = len(list(session.scalars(select(ContentSend.message_id))))

    rows = [
        ["email: sandbox ×4 + css-inline + text (the product path)", args.renders, f"{full_us:.0f}"],
        ["baseline: plain jinja2 autoescape render of the body, once", args.renders, f"{plain_us:.0f}"],
        ["ref: sandboxed body render, once", args.renders, f"{sandbox_us:.0f}"],
        ["ref: layout + css-inline", args.renders, f"{inline_us:.0f}"],
        ["ref: plain-text part", args.renders, f"{text_us:.0f}"],
        [f"recommend(plan, contact, 5) over {library} items", args.calls, f"{recommend_us:.0f}"],
        ["baseline: SELECT every library row", args.calls, f"{select_us:.0f}"],
    ]
    print_table(f"content — {machine()}, load avg {load_before:.1f}", ["path", "calls", "µs/call"], rows)
    print(f"content sends in the bench database: {sends} (recommend() excludes them per contact)")
    result_line(
        "content",
        {
            "render_email_us": round(full_us),
            "plain_jinja_us": round(plain_us),
            "render_ratio": round(full_us / plain_us, 1),
            "sandbox_ratio": round(sandbox_us / plain_us, 2),
            "recommend_us": round(recommend_us),
            "select_library_us": round(select_us),
            "recommend_ratio": round(recommend_us / select_us, 2),
            "library_items": library,
        },
    )
    return 0
