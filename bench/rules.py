"""`python -m bench rules`: µs per `engine.rules.decide` over N generated rules and M fact documents.

Baseline in the same run: the same conditions evaluated one at a time with `datalogic_py.apply`
(compile on every call), on a sample of the facts. Reference rows show the raw compiled evaluation
and the pre-parsed-facts path (`DataHandle` + `Session.evaluate_truthy`) that datalogic-py offers.
No database or Redis: decide() is pure.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datalogic_py

from bench.common import machine, print_table, profile_report, result_line
from bench.rulegen import make_facts, make_rules
from engine.rules import RuleSpec, compile_rules, decide
from engine.rules.logic import truthy

TARGET_US = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", type=int, default=50, help="rules per decision (%(default)s)")
    parser.add_argument("--facts", type=int, default=20000, help="fact documents = decisions (%(default)s)")
    parser.add_argument(
        "--baseline-facts",
        type=int,
        default=2000,
        help="facts for the compile-every-call baseline, a sample (µs compared, not scaled)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", action="store_true", help="cProfile decide() over 2,000 decisions")


def _timed(fn: Callable[[dict[str, Any]], object], facts: Sequence[dict[str, Any]]) -> float:
    """µs per call of fn over every fact document (after a short warm-up)."""
    for document in facts[:50]:
        fn(document)
    started = time.perf_counter()
    for document in facts:
        fn(document)
    return 1e6 * (time.perf_counter() - started) / len(facts)


def _matched_by_apply(rules: list[RuleSpec]) -> Callable[[dict[str, Any]], list[str]]:
    ordered = sorted(rules, key=lambda r: (-r.priority, r.name))

    def evaluate(document: dict[str, Any]) -> list[str]:
        return [r.name for r in ordered if truthy(datalogic_py.apply(r.condition, document))]

    return evaluate


def _compiled_evaluate(rules: list[RuleSpec]) -> Callable[[dict[str, Any]], list[bool]]:
    engine = datalogic_py.Engine()
    compiled = [engine.compile(r.condition) for r in rules]

    def evaluate(document: dict[str, Any]) -> list[bool]:
        return [bool(c.evaluate(document)) for c in compiled]

    return evaluate


def _preparsed(rules: list[RuleSpec]) -> Callable[[dict[str, Any]], list[bool]]:
    engine = datalogic_py.Engine()
    compiled = [engine.compile(r.condition) for r in rules]
    session = engine.session()

    def evaluate(document: dict[str, Any]) -> list[bool]:
        handle = datalogic_py.DataHandle(json.dumps(document))
        return [session.evaluate_truthy(c, handle) for c in compiled]

    return evaluate


def _compile_us(rules: list[RuleSpec], rounds: int = 20) -> float:
    """µs to compile one condition with a fresh datalogic_py.Engine (mean over the rule set)."""
    engine = datalogic_py.Engine()
    started = time.perf_counter()
    for _ in range(rounds):
        for rule in rules:
            engine.compile(rule.condition)
    return 1e6 * (time.perf_counter() - started) / (rounds * len(rules))


def _check(rules: list[RuleSpec], facts: Sequence[dict[str, Any]]) -> tuple[int, float]:
    """decide() and the apply baseline agree on every sample; returns (mismatches, mean matched)."""
    baseline = _matched_by_apply(rules)
    mismatches, matched = 0, 0
    for document in facts:
        decision = decide(document, rules)
        names = [t.rule for t in decision.trace if t.matched]
        matched += len(names)
        mismatches += names != baseline(document)
    return mismatches, matched / max(len(facts), 1)


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    rules = make_rules(args.rules, seed=args.seed)
    facts = make_facts(args.facts, seed=args.seed + 1)
    sample = facts[: args.baseline_facts]
    compile_us = _compile_us(rules)
    compiled_rules = compile_rules(rules)  # what engine.automation caches per published ruleset
    decide_us = _timed(lambda f: decide(f, compiled_rules), facts)
    uncached_us = _timed(_matched_by_apply(rules), sample)
    compiled_us = _timed(_compiled_evaluate(rules), facts)
    preparsed_us = _timed(_preparsed(rules), facts)
    mismatches, mean_matched = _check(rules, sample)
    n = args.rules
    rows = [
        [
            "decide(facts, compile_rules(rules)) — the product path",
            len(facts),
            f"{decide_us:.1f}",
            f"{decide_us / n:.2f}",
        ],
        [
            "baseline: datalogic_py.apply per condition (compile each call)",
            len(sample),
            f"{uncached_us:.1f}",
            f"{uncached_us / n:.2f}",
        ],
        [
            "ref: precompiled Rule.evaluate(dict) only",
            len(facts),
            f"{compiled_us:.1f}",
            f"{compiled_us / n:.2f}",
        ],
        [
            "ref: facts parsed once (DataHandle) + Session.evaluate_truthy",
            len(facts),
            f"{preparsed_us:.1f}",
            f"{preparsed_us / n:.2f}",
        ],
    ]
    print_table(
        f"rules — {n} rules (none stops processing), {machine()}, load avg {load_before:.1f}",
        ["path", "decisions", "µs/decision", "µs/rule"],
        rows,
    )
    print(f"compile: {compile_us:.1f} µs per condition ({compile_us * n / 1000:.2f} ms for the rule set)")
    print(
        f"rules matched per decision: {mean_matched:.1f} of {n}; decide() vs apply mismatches: {mismatches}"
    )
    print(f"baseline measured on a sample of {len(sample)} fact documents (µs/decision compared, not scaled)")
    met = decide_us < TARGET_US
    print(f"target < {TARGET_US:.0f} µs per decision for {n} rules: {'met' if met else 'MISSED'}")
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
            path = Path(tmp) / "decide.prof"
            profiler = cProfile.Profile()
            profiler.runcall(lambda: [decide(f, compiled_rules) for f in facts[:2000]])
            profiler.dump_stats(str(path))
            print(f"\ncProfile of decide() × 2000:\n{profile_report([path], top=14)}")
    result_line(
        "rules",
        {
            "rules": n,
            "decisions": len(facts),
            "us_per_decision": round(decide_us, 1),
            "us_per_decision_uncached": round(uncached_us, 1),
            "ratio": round(uncached_us / decide_us, 2),
            "compile_us_per_rule": round(compile_us, 1),
            "us_per_decision_preparsed": round(preparsed_us, 1),
            "mismatches": mismatches,
        },
    )
    return 0 if mismatches == 0 else 1
