"""Rewrite rules as data, the one driver that applies them, and the builder they emit through."""

from mlc.rewrite.builder import IRBuilder
from mlc.rewrite.driver import RulePass, apply_rules
from mlc.rewrite.rule import COMMUTATIVE, STANDARD_DOMAINS, Match, Reject, Rule, label

__all__ = ["COMMUTATIVE", "STANDARD_DOMAINS", "IRBuilder", "Match", "Reject", "Rule", "RulePass", "apply_rules",
           "label"]
