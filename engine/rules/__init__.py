"""Rules: JSON Logic conditions over facts, mapped to actions (DESIGN.md section 4)."""

from engine.rules.decide import (
    Action,
    CompiledRules,
    Decision,
    RuleSpec,
    TraceEntry,
    compile_rules,
    decide,
)
from engine.rules.logic import InvalidCondition, evaluate, validate_condition

__all__ = [
    "Action",
    "CompiledRules",
    "Decision",
    "InvalidCondition",
    "RuleSpec",
    "TraceEntry",
    "compile_rules",
    "decide",
    "evaluate",
    "validate_condition",
]
