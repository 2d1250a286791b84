# ruff: noqa: E501  (long lines are SQL text, easier to read unwrapped)
"""The reports data set: N accounts with everything the six reports read, built in SQL.

`northstar bench seed --accounts 1000000` (web/cli_reports.py) calls `seed()`. Every table is
filled by one `INSERT … SELECT … FROM generate_series` (no ORM, no Python loop per row); values are
spread by modular arithmetic on the row number, so a rerun builds the same data set. Per 1,000,000
accounts: 1M contacts, ~600k survey responses, 800k plans with 2.4M milestones and ~1.1M key results,
~1.3M plan revisions, 700k enrolments, ~1.3M messages and 10M events (`--events-per-account`), and
the reports' summary rows built from them (engine.reports.summaries; `northstar reports rebuild`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from sqlalchemy.engine import make_url

from bench.pgadmin import ALWAYS_PROTECTED, recreate_database
from campaigns.report_facts import enrollment_facts_sql
from engine.reports.plan_facts import KR_FACTS_SQL, PLAN_FACTS_SQL
from surveys.funnel_report import REACH_FACTS_SQL
from surveys.report_facts import RESPONSE_FACTS_SQL

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_reports"
PROTECTED = (*ALWAYS_PROTECTED, "northstar", "northstar_bench")

SEGMENTS = "ARRAY['smb','smb','smb','starter','starter','growth','growth','enterprise','strategic']"
STAGES = "ARRAY['onboarding','onboarding','enablement','adoption','adoption','optimisation','renewal']"
INDUSTRIES = "ARRAY['staffing','retail','saas','health','finance','education','logistics','media']"
REGIONS = "ARRAY['emea','amer','apac','latam']"
OUTCOMES = "ARRAY['hire_faster','cut_cost','grow_pipeline','retain_talent','improve_quality','scale_ops']"
OBJECTIVES = (
    "ARRAY['careers_site_traffic','time_to_fill','cost_per_hire','offer_acceptance','pipeline_size',"
    "'referral_share','retention_90d','quality_of_hire','recruiter_load','interview_speed','source_mix',"
    "'candidate_nps']"
)
EVENT_NAMES = (
    "ARRAY['login','job_posted','candidate_added','interview_scheduled','offer_sent','report_viewed']"
)

# The statements, in order. :n is the number of accounts, :e the events per account.
STEPS: tuple[tuple[str, str], ...] = (
    (
        "library",
        f"""
        INSERT INTO trait_definitions (key, type, description) VALUES
          ('industry', 'string', 'industry'), ('region', 'string', 'sales region');
        INSERT INTO outcomes (key, title, description)
        SELECT o, initcap(replace(o, '_', ' ')), '' FROM unnest({OUTCOMES}) AS o;
        INSERT INTO objectives (key, outcome_key, title, metric, unit, default_baseline, default_target,
                                default_days)
        SELECT o, ({OUTCOMES})[1 + (n - 1) % 6], initcap(replace(o, '_', ' ')), replace(o, '_', ' '), 'a week',
               100, 150, 90
        FROM unnest({OBJECTIVES}) WITH ORDINALITY AS t(o, n);
        INSERT INTO plan_templates (id, key, name, goal, default_objectives, milestones, dependencies, risks,
                                    review_days)
        VALUES (1, 'default', 'Default plan', 'Reach the first outcome', '[]', '[]', '[]', '[]', 90);
        INSERT INTO surveys (id, key, title, anonymous, created_at, redisplay_days)
        VALUES (1, 'onboarding', 'Onboarding survey', false, now() - interval '800 days', 30);
        INSERT INTO survey_versions (id, survey_id, version, definition, published_at)
        VALUES (1, 1, 1, '{{"questions": [
          {{"key": "outcomes", "kind": "outcome_pick", "title": "Outcomes"}},
          {{"key": "objectives", "kind": "objective_pick", "title": "Objectives"}}]}}',
          now() - interval '800 days');
        INSERT INTO campaigns (id, key, name, description, version, paused)
        SELECT c, k, initcap(replace(k, '-', ' ')), '', 1, false
        FROM unnest(ARRAY['onboard','adoption-nudge','renewal-prep','feature-launch','win-back'])
             WITH ORDINALITY AS t(k, c);
        INSERT INTO campaign_versions (campaign_id, version, settings, note, created_at, published_at)
        SELECT id, 1, '{{"holdout_percent": 10}}', '', now() - interval '800 days', now() - interval '800 days'
        FROM campaigns;
        INSERT INTO campaign_steps (id, campaign_id, version, position, key, kind, config)
        SELECT (c - 1) * 3 + p + 1, c, 1, p, 'step-' || p, CASE p WHEN 2 THEN 'in_app' ELSE 'email' END,
               CASE WHEN p = 0 AND c = 1 THEN '{{"template": "ask", "survey": "onboarding"}}'::jsonb
                    ELSE '{{"template": "tip"}}'::jsonb END
        FROM generate_series(1, 5) c, generate_series(0, 2) p;
        """,
    ),
    (
        "accounts",
        f"""
        INSERT INTO accounts (id, external_id, name, segment, plan_tier, lifecycle_stage, traits, timezone,
                              holdout_group, created_at)
        SELECT i, 'acc-' || i, 'Account ' || i,
               ({SEGMENTS})[1 + (i::bigint * 7919) % 9],
               (ARRAY['free','team','business','enterprise'])[1 + i % 4],
               ({STAGES})[1 + (i * 31) % 7],
               jsonb_build_object('industry', ({INDUSTRIES})[1 + (i * 13) % 8],
                                  'region', ({REGIONS})[1 + (i * 17) % 4]),
               'UTC', i % 97 = 0,
               now() - make_interval(days => 1 + (i * 7) % 730, secs => i % 86400)
        FROM generate_series(1, :n) AS i
        """,
    ),
    (
        "contacts",
        """
        INSERT INTO contacts (id, account_id, email, name, role, locale, created_at, unsubscribed_at,
                              unsubscribed_categories)
        SELECT a.id, a.id, 'ops' || a.id || '@acc.example', 'Ops ' || a.id, 'champion', 'en', a.created_at,
               CASE WHEN a.id % 53 = 0 THEN a.created_at + interval '20 days' END, '[]'
        FROM accounts a
        """,
    ),
    (
        "responses",
        f"""
        INSERT INTO responses (id, survey_version_id, account_id, contact_id, client_response_id, channel,
                               status, answers, created_at, completed_at)
        SELECT a.id, 1, a.id, a.id, 'r-' || a.id,
               (ARRAY['in_app','email','hosted'])[1 + a.id % 3],
               CASE WHEN a.id % 10 < 5 THEN 'completed' ELSE 'partial' END,
               CASE WHEN a.id % 10 < 5 THEN jsonb_build_object(
                   'outcomes', CASE WHEN a.id % 4 = 0
                       THEN jsonb_build_array(({OUTCOMES})[1 + (a.id * 3) % 6], ({OUTCOMES})[1 + (a.id * 3 + 1) % 6])
                       ELSE jsonb_build_array(({OUTCOMES})[1 + (a.id * 3) % 6]) END,
                   'objectives', jsonb_build_array(({OBJECTIVES})[1 + (a.id * 5) % 12]))
                 ELSE '{{}}'::jsonb END,
               least(now(), a.created_at + make_interval(days => a.id % 5)),
               CASE WHEN a.id % 10 < 5 THEN least(now(), a.created_at + make_interval(days => a.id % 5, mins => 7))
               END
        FROM accounts a WHERE a.id % 10 < 6
        """,
    ),
    (
        "survey_reaches",
        """
        INSERT INTO survey_reaches (survey_id, account_id, contact_id, channel, first_at, last_at, times)
        SELECT 1, a.id, a.id, CASE a.id % 3 WHEN 0 THEN 'in_app' ELSE 'hosted' END,
               least(now(), a.created_at + make_interval(days => a.id % 3)), now(), 1 + a.id % 4
        FROM accounts a WHERE a.id % 10 < 8 AND a.id % 3 <> 1
        """,
    ),
    ("survey_choices", "REBUILD_CHOICES"),
    (
        "success_plans",
        """
        INSERT INTO success_plans (id, account_id, template_key, status, goal, dependencies, risks, started_at,
                                   review_date, review_every_days, share_token_version, created_at, updated_at,
                                   stage)
        SELECT a.id, a.id, 'default', CASE WHEN a.id % 41 = 0 THEN 'completed' ELSE 'active' END,
               'Reach the first outcome', '[]', '[]', s.started, (s.started + interval '90 days')::date, 90, 1,
               s.started, s.started, a.lifecycle_stage
        FROM accounts a
        CROSS JOIN LATERAL (SELECT least(now(), a.created_at + make_interval(days => a.id % 14)) AS started) s
        WHERE a.id % 5 <> 0
        """,
    ),
    (
        "key_results",
        f"""
        INSERT INTO key_results (plan_id, objective_key, title, metric, unit, baseline, target, current,
                                 due_date)
        SELECT p.id, ({OBJECTIVES})[1 + (p.id * 5 + k) % 12], 'KR', 'visits', 'a week',
               b.baseline, b.baseline * 1.5,
               round(b.baseline + b.baseline * 0.5 * ((p.id * 37 + k * 11) % 130) / 100.0
                     * CASE WHEN p.id % 10 = 0 THEN 0.8 ELSE 1 END),
               (p.started_at + interval '120 days')::date
        FROM success_plans p
        CROSS JOIN generate_series(0, 1) k
        CROSS JOIN LATERAL (SELECT 100 + (p.id * 7 + k * 101) % 900 AS baseline) b
        WHERE k = 0 OR p.id % 3 = 0
        """,
    ),
    (
        "milestones",
        """
        INSERT INTO milestones (plan_id, key, title, position, owner, due_date, status, achieved_at)
        SELECT p.id, 'm' || m, 'Milestone ' || m, m, 'customer',
               (p.started_at + make_interval(days => 30 * (m + 1)))::date,
               CASE WHEN h.v < 55 - m * 15 - CASE WHEN p.id % 10 = 0 THEN 8 ELSE 0 END
                         AND h.at <= now() THEN 'achieved'
                    WHEN h.v < 55 - m * 15 THEN 'on_track'
                    WHEN h.v < 70 THEN 'behind'
                    WHEN h.v < 78 THEN 'missed'
                    WHEN h.v < 90 THEN 'on_track'
                    ELSE 'pending' END,
               CASE WHEN h.v < 55 - m * 15 - CASE WHEN p.id % 10 = 0 THEN 8 ELSE 0 END AND h.at <= now()
                    THEN h.at END
        FROM success_plans p
        CROSS JOIN generate_series(0, 2) m
        CROSS JOIN LATERAL (
            SELECT (p.id * 31 + m * 17) % 100 AS v,
                   p.started_at + make_interval(days => 1 + (p.id * 7 + m * 13) % 45 + m * 10) AS at
        ) h
        """,
    ),
    (
        "plan_revisions",
        """
        INSERT INTO plan_revisions (plan_id, actor, channel, summary, change, created_at)
        SELECT p.id, 'rules', 'rules', 'Plan created', '{}', p.started_at FROM success_plans p;
        INSERT INTO plan_revisions (plan_id, actor, channel, summary, change, created_at)
        SELECT p.id, 'customer via shared link', 'shared', 'Measure updated', '{}',
               least(now(), p.started_at + make_interval(days => 3 + p.id % 20))
        FROM success_plans p WHERE p.id % 10 < 3;
        INSERT INTO plan_revisions (plan_id, actor, channel, summary, change, created_at)
        SELECT p.id, 'customer via shared link', CASE WHEN p.id % 2 = 0 THEN 'shared' ELSE 'admin' END,
               'Review confirmed; next review soon', '{"review": []}',
               least(now(), p.started_at + make_interval(days => 30 + p.id % 30))
        FROM success_plans p WHERE p.id % 7 = 0
        """,
    ),
    (
        "plan_page_views",
        """
        INSERT INTO plan_page_views (plan_id, day, views)
        SELECT p.id, least(now(), p.started_at + make_interval(days => 1 + p.id % 9 + d * 11))::date, 1 + p.id % 3
        FROM success_plans p CROSS JOIN generate_series(0, 1) d
        WHERE p.id % 10 < 4 AND (d = 0 OR p.id % 20 = 0)
        ON CONFLICT DO NOTHING
        """,
    ),
    (
        "enrollments",
        """
        INSERT INTO enrollments (id, account_id, campaign_id, state, current_step, step_started_at, enrolled_at,
                                 history, campaign_version, entry, held_out)
        SELECT a.id, a.id, 1 + a.id % 5, CASE WHEN a.id % 3 = 0 THEN 'completed' ELSE 'active' END, 1,
               e.at, e.at, '[]', 1, 1, a.id % 10 = 0
        FROM accounts a
        CROSS JOIN LATERAL (SELECT least(now(), a.created_at + make_interval(days => 1 + a.id % 6)) AS at) e
        WHERE a.id % 10 < 7
        """,
    ),
    (
        "messages",
        """
        INSERT INTO messages (enrollment_id, step_id, contact_id, channel, status, reason, dedupe_key,
                              template_key, created_at, updated_at, sent_at, delivered_at, opened_at,
                              clicked_at, trace)
        SELECT e.id, (e.campaign_id - 1) * 3 + s + 1, e.account_id, 'email', x.status, x.reason,
               e.id || ':' || ((e.campaign_id - 1) * 3 + s + 1) || ':' || e.account_id, 'tip',
               x.at, x.at,
               CASE WHEN x.status NOT IN ('suppressed') THEN x.at END,
               CASE WHEN x.status IN ('delivered','opened','clicked') THEN x.at + interval '1 minute' END,
               CASE WHEN x.status IN ('opened','clicked') THEN x.at + interval '2 hours' END,
               CASE WHEN x.status = 'clicked' THEN x.at + interval '3 hours' END,
               '{}'
        FROM enrollments e
        CROSS JOIN generate_series(0, 1) s
        CROSS JOIN LATERAL (
            SELECT least(now(), e.enrolled_at + make_interval(days => s * 7, hours => 9)) AS at,
                   (e.id * 11 + s * 7) % 100 AS v
        ) h
        CROSS JOIN LATERAL (
            SELECT h.at,
                   CASE WHEN e.held_out THEN 'suppressed'
                        WHEN h.v < 5 THEN 'suppressed' WHEN h.v < 9 THEN 'suppressed'
                        WHEN h.v < 12 THEN 'bounced' WHEN h.v < 40 THEN 'delivered'
                        WHEN h.v < 60 THEN 'opened' WHEN h.v < 72 THEN 'clicked' ELSE 'sent' END AS status,
                   CASE WHEN e.held_out THEN 'holdout' WHEN h.v < 5 THEN 'unsubscribed'
                        WHEN h.v < 9 THEN 'frequency cap: 3 nudges per account per week' END AS reason
        ) x
        WHERE s = 0 OR NOT e.held_out
        """,
    ),
    (
        "report_summaries",  # statistics first: the summary statements join the fresh tables
        "ANALYZE accounts, success_plans, milestones, key_results, enrollments, messages, responses, "
        "survey_choices, survey_reaches",
    ),
    *(
        (name, f"DELETE FROM {name};\n{sql}")
        for name, sql in (
            ("report_plan_facts", PLAN_FACTS_SQL.format(plans="TRUE", milestones="TRUE")),
            ("report_kr_facts", KR_FACTS_SQL.format(krs="TRUE")),
            (
                "report_enrollment_facts",
                "DELETE FROM report_enrollment_channel_facts;\n" + enrollment_facts_sql(),
            ),
            ("report_response_facts", RESPONSE_FACTS_SQL.format(responses="TRUE", choices="TRUE")),
            ("report_reach_facts", REACH_FACTS_SQL.format(reaches="TRUE")),
            ("report_dirty", "SELECT 1"),  # nothing is stale: the rows above were built from everything
        )
    ),
    (
        "events",
        f"""
        INSERT INTO events (account_id, contact_id, name, properties, occurred_at, received_at, idempotency_key)
        SELECT a.id, a.id, ({EVENT_NAMES})[1 + (a.id + j) % 6], '{{}}', t.at, t.at, 'e-' || a.id || '-' || j
        FROM accounts a
        CROSS JOIN generate_series(1, :e) j
        CROSS JOIN LATERAL (
            SELECT least(now(), a.created_at + make_interval(days => (j * 17 + a.id) % 120, mins => j)) AS at
        ) t
        """,
    ),
)

SEQUENCES = (
    "accounts",
    "contacts",
    "responses",
    "success_plans",
    "plan_templates",
    "surveys",
    "survey_versions",
    "campaigns",
    "campaign_steps",
    "enrollments",
)


@dataclass
class SeedResult:
    accounts: int
    seconds: float
    rows: dict[str, int]


def seed(
    database_url: str,
    accounts: int,
    *,
    events_per_account: int = 10,
    say: Callable[[str], None] = print,
) -> SeedResult:
    """DROP and CREATE the database, migrate it, fill it; returns the row counts and the time taken."""
    from migrations.runner import upgrade
    from surveys.reports import REBUILD_CHOICES_SQL

    if accounts < 1 or events_per_account < 0:
        raise ValueError("--accounts must be at least 1 and --events-per-account at least 0")
    recreate_database(database_url, protected=PROTECTED)
    upgrade(database_url)
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    rows: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        # A bulk load: no trigger marks report summary keys stale (the summary steps build every row
        # from the loaded tables), and no foreign-key trigger checks the generated ids.
        conn.execute("SET session_replication_role = replica")
        for name, statement in STEPS:
            t0 = time.perf_counter()
            sql = REBUILD_CHOICES_SQL if statement == "REBUILD_CHOICES" else statement
            sql = sql.replace(":n", str(int(accounts))).replace(":e", str(int(events_per_account)))
            with conn.transaction():
                for part in (p for p in sql.split(";\n") if p.strip()):
                    conn.execute(part)
            counted = name not in ("library", "report_summaries")
            count = conn.execute(f"SELECT count(*) FROM {name}").fetchone() if counted else None
            rows[name] = int(count[0]) if count else 0
            say(f"  {name:<24} {rows[name]:>12,} rows  {time.perf_counter() - t0:7.1f} s")
        for table in SEQUENCES:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        say(f"  vacuum analyze                    {time.perf_counter() - t0:7.1f} s")
    return SeedResult(accounts, time.perf_counter() - started, rows)
