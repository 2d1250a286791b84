"""Sandboxed Jinja for every user-authored text (plan goals, emails, cards): autoescaped, no attribute
tricks, bounded in time and size. `content.templates.render_string` is the entry point for message
templates; engine (which cannot import content) renders plan goals through `render_text` here, and
both share this one sandbox."""

from __future__ import annotations

import functools
import operator
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.errors import ValidationFailed

RENDER_TIMEOUT_S = 1.0  # a message template renders in well under a millisecond; a loop bomb does not
MAX_OUTPUT_CHARS = 1_000_000  # a rendered email is tens of kilobytes
MAX_SEQUENCE = 100_000  # longest string/list a `*` or `**` may build, and the longest `range`


class TemplateFailed(ValidationFailed):
    """A template that does not parse or does not render; `errors` names the template field."""


class RenderTimeout(SecurityError):
    """The render went past its deadline (a huge loop): stopped, nothing is returned."""


class _Deadline(threading.local):
    """This thread's render deadline, checked on every call, attribute, item and loop step."""

    at = float("inf")

    def check(self) -> None:
        if time.perf_counter() > self.at:
            raise RenderTimeout(
                f"the template took longer than {RENDER_TIMEOUT_S:g}s to render (a huge loop?)"
            )


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment plus a render deadline and bounded `*`, `**` and `range`."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=StrictUndefined)
        self.deadline = _Deadline()
        # No lipsum/cycler/joiner/namespace: nothing to abuse. LOOP_GUARD wraps every for-loop.
        self.globals = {"range": self._range, LOOP_GUARD: self._guarded}
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Every `{% for %}` iterates through a guard that checks the deadline at each step, so
        # nested loops over long strings or lists stop at the deadline too.
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            guarded = nodes.Call(nodes.Name(LOOP_GUARD, "load"), [loop.iter], [], None, None)
            loop.iter = guarded.set_lineno(loop.lineno).set_environment(self)
        return tree

    def _guarded(self, items: Any) -> Iterator[Any]:
        for item in items:
            self.deadline.check()
            yield item

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and isinstance(getattr(value, "__self__", None), str):
            _check_format(value.__self__)  # `"{:>999999999}".format(x)`: refuse before it allocates
        return wrapped

    def _range(self, *args: int) -> Iterator[int]:
        numbers = range(*args)
        if len(numbers) > MAX_SEQUENCE:
            raise SecurityError(f"range() is limited to {MAX_SEQUENCE:,} items")
        for number in numbers:
            self.deadline.check()
            yield number

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        self.deadline.check()
        if operator_ == "%":
            if isinstance(left, str):
                _check_format(left)
            return operator.mod(left, right)
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponents above 64 are not allowed in templates")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            sized = isinstance(times, int) and hasattr(seq, "__len__") and not isinstance(seq, int | float)
            if sized and len(seq) * max(times, 0) > MAX_SEQUENCE:
                raise SecurityError(f"a repeated string or list is limited to {MAX_SEQUENCE:,} items")
        return operator.mul(left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        self.deadline.check()
        for value in (*args, *kwargs.values()):
            _check_int(value)  # width/count arguments (center, ljust, zfill…) cannot build huge strings
        _check_str_method(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.deadline.check()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.deadline.check()
        return super().getitem(obj, argument)


LOOP_GUARD = "ns_loop_guard"
_WIDE_FORMAT = re.compile(r"\d{6,}")


def _check_format(fmt: str) -> None:
    if _WIDE_FORMAT.search(fmt):
        raise SecurityError("format widths and precisions are limited to 5 digits")


def _check_int(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SEQUENCE:
        raise SecurityError(f"numbers passed to functions and filters are limited to {MAX_SEQUENCE:,}")


def _check_str_method(obj: Any, args: tuple[Any, ...]) -> None:
    """`s.replace(a, b)` and `sep.join(items)` can multiply sizes; refuse results past the limit."""
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(obj, "__name__", "")
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = owner.count(args[0]) if args[0] else len(owner) + 1
        if len(owner) + count * len(args[1]) > MAX_OUTPUT_CHARS:
            raise SecurityError(f"replace() would build more than {MAX_OUTPUT_CHARS:,} characters")
    elif (
        name == "join"
        and args
        and hasattr(args[0], "__len__")
        and len(owner) * len(args[0]) > MAX_OUTPUT_CHARS
    ):
        raise SecurityError(f"join() would build more than {MAX_OUTPUT_CHARS:,} characters")


def _bounded_filter(name: str, filter_: Any) -> Any:
    """A filter whose numeric arguments, format strings and replacements are bounded."""

    @functools.wraps(filter_)  # keeps jinja_pass_arg (context/eval-context filters)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            _check_int(value)
        strings = [a for a in args if isinstance(a, str)]
        if name == "format" and strings:
            _check_format(strings[0])
        if name == "replace" and len(strings) >= 3:
            value, old, new = strings[-3:]
            count = value.count(old) if old else len(value) + 1
            if len(value) + count * len(new) > MAX_OUTPUT_CHARS:
                raise SecurityError(f"replace would build more than {MAX_OUTPUT_CHARS:,} characters")
        return filter_(*args, **kwargs)

    return bounded


@functools.lru_cache(maxsize=2)
def environment(autoescape: bool) -> BoundedSandbox:
    return BoundedSandbox(autoescape=autoescape)


@functools.lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Template:
    return environment(html).from_string(source)


def compile_template(source: str, *, field: str = "template", html: bool = False) -> Template:
    """Parse once (cached); a syntax error names `field` and the template's line."""
    try:
        return _compiled(source, html)
    except TemplateSyntaxError as exc:
        raise TemplateFailed({field: f"line {exc.lineno}: {exc.message}"}) from exc
    except TemplateError as exc:
        raise TemplateFailed({field: str(exc)}) from exc


def render_sandboxed(
    source: str,
    context: dict[str, Any],
    *,
    field: str = "template",
    html: bool = False,
    timeout_s: float = RENDER_TIMEOUT_S,
) -> str:
    """Render `source` in the bounded sandbox; TemplateFailed names `field` on any error, a sandbox
    escape, the deadline or the output limit. Renders are not re-entrant per thread (Jinja is sync)."""
    template = compile_template(source, field=field, html=html)
    sandbox = environment(html)
    previous = sandbox.deadline.at
    sandbox.deadline.at = min(previous, time.perf_counter() + timeout_s)
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise SecurityError(f"the template renders to more than {MAX_OUTPUT_CHARS:,} characters")
            parts.append(chunk)
        return "".join(parts)
    except SecurityError as exc:
        raise TemplateFailed({field: f"not allowed: {exc}"}) from exc
    except TemplateError as exc:
        raise TemplateFailed({field: _explain(exc)}) from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
        # e.g. `{{ 1 / 0 }}`, `{{ "a" + 1 }}`, a format spec that does not fit its value
        raise TemplateFailed({field: f"{type(exc).__name__}: {exc}"}) from exc
    finally:
        sandbox.deadline.at = previous


def _explain(exc: TemplateError) -> str:
    message = str(exc)
    if message.endswith("is undefined"):
        return f"{message} (not one of the variables this template gets; see docs/content.md)"
    return message


def render_text(source: str, context: dict[str, Any], *, field: str = "template", html: bool = False) -> str:
    """Engine's entry point (plan goals): the same bounded sandbox as content.templates.render_string."""
    return render_sandboxed(source, context, field=field, html=html)
