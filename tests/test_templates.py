"""User-authored templates: one sandboxed entry point, known SSTI payloads refused, huge loops and
outputs stopped, undefined variables and syntax errors named at save time, locale fallback."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.orm import Session

from content.models import MessageTemplate
from content.schemas import TemplateSchema
from content.templates import SAMPLE_CONTEXT, check_template, find_template, render_string, save_template
from engine.errors import NotFound
from engine.templating import TemplateFailed, render_text

# Server-side template injection payloads collected from public SSTI cheat sheets (PayloadsAllTheThings,
# HackTricks, PortSwigger): class-hierarchy walks, globals/builtins, config/request/self objects,
# format-string tricks, attr()/|map filter escapes, and Jinja globals.
SSTI_PAYLOADS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__()[40]('/etc/passwd').read() }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ config.items() }}",
    "{{ config.__class__.__init__.__globals__['os'].popen('id').read() }}",
    "{{ request.application.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ url_for.__globals__.os.popen('id').read() }}",
    "{{ get_flashed_messages.__globals__ }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ (''|attr('__class__')).__base__ }}",
    "{{ contact|attr('__dict__') }}",
    "{{ contact.__class__ }}",
    "{{ content.__class__.__mro__ }}",
    "{{ content[0].__class__.__init__ }}",
    "{{ contact.first_name.__class__.__mro__[1] }}",
    "{{ '{0.__class__.__mro__}'.format(contact) }}",
    "{{ '{x.__class__}'.format_map({'x': contact}) }}",
    "{{ contact.update({'x': 1}) }}",
    "{{ content.append(1) }}",
    "{{ content.pop() }}",
    "{% set x = content.clear() %}",
    "{{ range.__globals__ }}",
    "{{ range.__self__ }}",
    "{{ ns_loop_guard.__self__.__init__ }}",
    "{{ [].pop.__self__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% import 'os' as os %}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "{{ ''['__class__'] }}",
    "{{ ''['\\x5f\\x5fclass\\x5f\\x5f'] }}",
    "{{ dict.__base__ }}",
    "{{ ''.__add__ }}",
    "{{ contact.first_name.__len__() }}",
]


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_known_ssti_payloads_are_refused_and_run_nothing(payload: str) -> None:
    with pytest.raises(TemplateFailed) as failed:
        render_string(payload, SAMPLE_CONTEXT, field="body")
    assert "body" in failed.value.errors
    assert not failed.value.errors["body"].startswith("Traceback")


def test_variables_are_autoescaped_in_html_templates_not_in_subjects() -> None:
    context = {"contact": {"first_name": "<script>alert(1)</script>"}}
    assert render_string("Hi {{ contact.first_name }}", context) == "Hi &lt;script&gt;alert(1)&lt;/script&gt;"
    assert render_string("Hi {{ contact.first_name }}", context, html=False) == "Hi <script>alert(1)</script>"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "longer than"),
        ("{% for a in 'x' * 99999 %}{% for b in 'y' * 99999 %}{% endfor %}{% endfor %}", "longer than"),
        ("{{ 'x' * 10000000 }}", "limited to"),
        ("{{ range(10000000)|list }}", "limited to"),
        ("{{ 9 ** 999999 }}", "exponents"),
        ("{{ 'x'|center(900000000) }}", "limited to"),
        ("{{ '%999999999s' % 1 }}", "format widths"),
        ("{{ '{0:>999999999}'.format(1) }}", "format widths"),
        ("{{ ('x' * 99999)|replace('x', 'y' * 99999) }}", "replace"),
        ("{{ ('x' * 99999).join('y' * 99999) }}", "join"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "RecursionError"),
    ],
)
def test_huge_loops_and_outputs_stop_with_a_message(source: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateFailed) as failed:
        render_string(source, {}, field="body")
    assert message in failed.value.errors["body"]
    assert time.perf_counter() - started < 5  # the deadline is 1 s; nothing runs away


def test_syntax_errors_name_the_field_and_line() -> None:
    with pytest.raises(TemplateFailed) as failed:
        render_string("<p>ok</p>\n<p>{{ contact.name </p>\n", SAMPLE_CONTEXT, field="templates[0].body")
    assert failed.value.errors["templates[0].body"].startswith("line 2:")


def test_undefined_variables_are_refused_at_save_time_with_every_broken_part() -> None:
    with pytest.raises(TemplateFailed) as failed:
        check_template("email", "Hi {{ contact.nickname }}", "{{ plan.goal }}", "<p>{{ acount.name }}</p>")
    assert set(failed.value.errors) == {"subject", "body"}
    assert "'acount' is undefined" in failed.value.errors["body"]
    assert "nickname" in failed.value.errors["subject"]


def test_the_documented_variables_all_render_with_the_sample_data() -> None:
    body = (
        "{{ contact.first_name }} {{ contact.name }} {{ contact.email }} {{ account.name }} {{ plan.goal }} "
        "{{ plan.url }} {{ plan.review_date }} {{ next_milestone.title }} {{ next_milestone.due_date }} "
        "{% for item in content %}{{ item.title }} {{ item.url }} {{ item.minutes }}{% endfor %} "
        "{{ recommended.title }} {{ recommended.why }} {{ campaign.name }} {{ unsubscribe_url }} "
        "{{ survey.question }}"
    )
    check_template("email", "Subject {{ account.name }}", "Pre {{ plan.goal }}", body)


def test_an_email_template_needs_a_subject_and_cards_are_checked_as_cards() -> None:
    with pytest.raises(TemplateFailed) as failed:
        check_template("email", " ", "", "<p>ok</p>")
    assert "subject" in failed.value.errors
    with pytest.raises(TemplateFailed) as failed:
        check_template("in_app", "", "", "<p>{{ unsubscribe_url }}</p>")  # cards have no unsubscribe link
    assert "body" in failed.value.errors


def test_plan_goals_use_the_same_bounded_sandbox() -> None:
    with pytest.raises(TemplateFailed):
        render_text("{{ ''.__class__ }}", {})
    assert render_text("By {{ review_date }}", {"review_date": "May 1"}) == "By May 1"


def test_templates_fall_back_to_the_default_locale(db: Session) -> None:
    base = {
        "kind": "email",
        "subject": "Hello {{ contact.first_name }}",
        "preheader": "",
        "body": "<p>Hi</p>",
    }
    save_template(db, TemplateSchema().load({**base, "key": "hello"}))
    save_template(db, TemplateSchema().load({**base, "key": "hello", "locale": "de", "subject": "Hallo"}))
    assert find_template(db, "hello", "de-AT").subject == "Hallo"
    assert find_template(db, "hello", "fr").subject.startswith("Hello")
    assert find_template(db, "hello", None).locale == "en"
    with pytest.raises(NotFound):
        find_template(db, "missing", "en")


def test_saving_a_changed_template_bumps_its_version_and_a_broken_one_changes_nothing(db: Session) -> None:
    data = TemplateSchema().load({"key": "v", "subject": "S", "body": "<p>one</p>"})
    row = save_template(db, data)
    assert row.version == 1
    assert save_template(db, data).version == 1
    assert save_template(db, {**data, "body": "<p>two</p>"}).version == 2
    with pytest.raises(TemplateFailed):
        save_template(db, {**data, "body": "<p>{{ nope }}</p>"})
    assert db.get(MessageTemplate, row.id).body == "<p>two</p>"  # type: ignore[union-attr]
