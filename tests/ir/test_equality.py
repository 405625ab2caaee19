"""assert_graph_equal: equal up to renaming, and each kind of difference is named."""

from __future__ import annotations

import pytest

from mlc.ir import assert_graph_equal, graph_difference, parse_ir

BASE = '''graph "g" (%x: f32[2]) {
  const %c = dense<f32[2]> [1.0, 2.0]
  %a: f32[2] = Add(%x, %c)
  %b: f32[2] = Relu(%a) {alpha=1.0}
  return %b
}
'''


def test_renamed_values_are_equal() -> None:
    renamed = BASE.replace("%x", "%input").replace("%a", "%tmp").replace("%c", "%w")
    assert_graph_equal(parse_ir(BASE), parse_ir(renamed))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("Relu(%a)", "Sigmoid(%a)", "op ::Relu vs ::Sigmoid"),
        ("{alpha=1.0}", "{alpha=2.0}", "attribute alpha"),
        ("{alpha=1.0}", "{alpha=1}", "kind FLOAT vs INT"),
        ("[1.0, 2.0]", "[1.0, 3.0]", "constants differ"),
        ("Add(%x, %c)", "Add(%c, %x)", "reads"),
        ("%b: f32[2]", "%b: f32[3]", "type f32[2] vs f32[3]"),
        ("return %b", "return %a", "output 0"),
    ],
)
def test_each_difference_is_reported(old: str, new: str, message: str) -> None:
    other = BASE.replace(old, new)
    assert other != BASE
    difference = graph_difference(parse_ir(BASE), parse_ir(other))
    assert difference is not None and message in difference, difference
    with pytest.raises(AssertionError, match="graphs differ"):
        assert_graph_equal(parse_ir(BASE), parse_ir(other))
