"""Test kit for pass authors (TVM's Before/Expected pattern, with a numeric check).

    def test_removes_identity():
        BEFORE = '''graph "g" (%x: f32[2]) {
          %y: f32[2] = Identity(%x)
          %z: f32[2] = Relu(%y)
          return %z
        }'''
        EXPECTED = '''graph "g" (%x: f32[2]) {
          %z: f32[2] = Relu(%x)
          return %z
        }'''
        assert_pass("eliminate-identity", BEFORE, EXPECTED)   # structural, up to renaming
        assert_pass("eliminate-identity", EXPECTED, EXPECTED) # must-not-change case

`assert_pass` also checks the numbers: the graph before and after run under onnxruntime (optimizer
off) on seeded inputs and must agree within the pass's contract. The pytest fixture in
`tests/conftest.py` turns on IR verification after every pass run in every test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlc.ir.core import Graph, ModelInfo
from mlc.ir.equality import assert_graph_equal
from mlc.ir.parser import parse_ir
from mlc.ir.printer import print_ir
from mlc.numerics.compare import FAIL, compare_outputs
from mlc.numerics.inputs import InputSpec, make_inputs
from mlc.numerics.reference import run_graph
from mlc.pass_api import Numerics, Pass, PassContext, parse_pass_spec, set_verify_after_every_run

DEFAULT_OPSET = 17


def as_graph(source: Graph | str, opset: int = DEFAULT_OPSET) -> Graph:
    """A graph from text; a bare `graph` (no `model` line) gets IR 8 and the given ai.onnx opset."""
    if isinstance(source, Graph):
        return source
    graph = parse_ir(source)
    if graph.model is None:
        graph.model = ModelInfo(ir_version=8, opset_imports={"": opset})
    return graph


def run_pass(pass_: Pass | str, graph: Graph | str, max_rewrites: int | None = None) -> tuple[Graph, PassContext]:
    """Run one pass on a graph (parsed from text if needed); returns the graph and the context."""
    instance = parse_pass_spec(pass_) if isinstance(pass_, str) else pass_
    target = as_graph(graph)
    ctx = PassContext(instance.name, max_rewrites=max_rewrites)
    changed = instance.run(target, ctx)
    assert isinstance(changed, bool), f"{instance.name}.run returned {changed!r}"
    return target, ctx


def assert_numerically_equivalent(before: Graph | str, after: Graph | str, numerics: Numerics = Numerics.EXACT,
                                  feeds: dict[str, np.ndarray] | None = None, seed: int = 0) -> None:
    """Run both graphs on the same seeded inputs (or `feeds`) and compare within `numerics`."""
    g_before, g_after = as_graph(before), as_graph(after)
    inputs = feeds if feeds is not None else make_inputs(g_before, InputSpec(seed=seed))
    expected = run_graph(g_before, inputs)
    got = run_graph(g_after, inputs)
    names = [v.name for v in g_before.outputs]
    renamed = dict(zip(names, [got[v.name] for v in g_after.outputs], strict=True))
    result = compare_outputs(expected, renamed, numerics, "onnxruntime")
    if result.verdict == FAIL:
        raise AssertionError("numbers differ: " + "; ".join(o.describe() for o in result.outputs if o.verdict != "ok"))


def assert_pass(pass_: Pass | str, before: str, expected: str, *, numeric: bool = True, seeds: tuple[int, ...] = (0, 1),
                feeds: dict[str, np.ndarray] | None = None, **expect: Any) -> PassContext:
    """Run the pass on BEFORE; the result must equal EXPECTED up to renaming (EXPECTED = BEFORE
    marks a must-not-change case, which must also report no change), and compute the same numbers."""
    instance = parse_pass_spec(pass_) if isinstance(pass_, str) else pass_
    graph, ctx = run_pass(instance, before)
    assert_graph_equal(graph, as_graph(expected), check_metadata=False)
    unchanged = print_ir(as_graph(before)) == print_ir(as_graph(expected))
    if unchanged:
        assert ctx.rewrites == 0, f"{instance.name} counted {ctx.rewrites} rewrites on a must-not-change case"
    if numeric:
        for seed in seeds if feeds is None else (0,):
            assert_numerically_equivalent(before, graph, instance.numerics, feeds=feeds, seed=seed)
    for key, value in expect.items():
        assert ctx.stats.get(key, 0) == value, f"statistic {key}: {ctx.stats.get(key, 0)} != {value}"
    return ctx


__all__ = ["as_graph", "assert_numerically_equivalent", "assert_pass", "run_pass", "set_verify_after_every_run"]
