"""Small steps of the chain matchers (GELU, layer norm): a node's one output, and whether a value
inside a pattern is read by the pattern alone. The fused node replaces the whole chain, so a value
read outside it would be lost; the reason names the value the way the remarks do."""

from __future__ import annotations

from mlc.ir.core import Node, Value


def output_of(node: Node) -> Value:
    """The node's first output (a pattern's nodes all have one)."""
    out = node.outputs[0]
    assert out is not None
    return out


def read_outside(value: Value, what: str, pattern: str) -> str | None:
    """Why `value` (`what` in words) cannot vanish into the fused `pattern`: it is a graph output or
    has another reader; None when the pattern alone reads it, once."""
    if value.is_graph_output or len(value.uses) != 1:
        return f"{what} (%{value.name}) is also read outside the {pattern}"
    return None


__all__ = ["output_of", "read_outside"]
