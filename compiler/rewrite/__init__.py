"""Rewrite rules as data, the one driver that applies them, and the builder they emit through."""

from mlc.rewrite.builder import IRBuilder
from mlc.rewrite.driver import AnyRule, RulePass, apply_rules
from mlc.rewrite.rule import (
    ANY_OP,
    COMMUTATIVE,
    STANDARD_DOMAINS,
    Match,
    Reject,
    Rule,
    ValueMatch,
    ValueRule,
    label,
)

__all__ = ["ANY_OP", "COMMUTATIVE", "STANDARD_DOMAINS", "AnyRule", "IRBuilder", "Match", "Reject", "Rule", "RulePass",
           "ValueMatch", "ValueRule", "apply_rules", "label"]
