"""Inserting a node a pass built itself, through a rule's `IRBuilder`.

`IRBuilder.op` names a new node and its output after the matched root. The layout and slice rules
predate it and name theirs after the values they replace (the optimized IR, golden files
included, spells those names), and some insert before another node than the root, or stamp other
replaced nodes: this inserts such a node with the same provenance `IRBuilder.op` gives.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlc.ir.core import Node, Value
from mlc.rewrite import IRBuilder


def emit(builder: IRBuilder, node: Node, replaced: Sequence[Node], rule: str | None,
         before: Node | None = None) -> Value:
    """Insert `node` before `before` (the root by default), stamped as replacing `replaced` by
    `rule` (None: the last rule counted); returns its first output."""
    where = before or builder.anchor
    assert where is not None, "a rule without a root node emits nothing"
    builder.graph.insert_before(where, node)
    builder.ctx.created(node, replaced, rule)
    builder.created.append(node)
    out = node.outputs[0]
    assert out is not None
    return out


__all__ = ["emit"]
