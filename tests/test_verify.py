"""Numeric verification: comparison verdicts, generated inputs, the two references."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.errors import BadInputError
from mlc.numerics import compare_outputs, load_inputs, make_inputs, run_graph
from mlc.numerics.compare import compare_array
from mlc.numerics.inputs import InputSpec, parse_range_flags, parse_shape_flags
from mlc.numerics.reference import REFERENCE
from mlc.pass_api import Numerics
from mlc.testing import as_graph


def test_float_tolerances_follow_the_contract() -> None:
    expected = np.linspace(-1, 1, 100, dtype=np.float32)
    noisy = expected * np.float32(1 + 3e-5)
    assert compare_array("y", expected, noisy, Numerics.TOLERANCE).verdict == "ok"
    check = compare_array("y", expected, noisy, Numerics.EXACT)
    assert check.verdict == "fail" and check.max_rel == pytest.approx(3e-5, rel=0.1)
    broken = expected.copy()
    broken[37] += 0.01
    check = compare_array("y", expected, broken, Numerics.TOLERANCE)
    assert check.verdict == "fail" and check.worst_index == (37,)
    assert check.expected == pytest.approx(float(expected[37])) and check.got == pytest.approx(float(broken[37]))
    assert 0.99 < check.cosine < 1.0


def test_nan_reference_is_judged() -> None:
    """A NaN in the reference vouches for nothing (inconclusive even where both agree); a finite
    value where the reference is NaN, or NaN where it is finite, is a failure."""
    expected = np.array([1.0, np.nan, np.inf], np.float32)
    assert compare_array("y", expected, expected.copy(), Numerics.EXACT).verdict == "inconclusive"
    got = np.array([1.0, 2.0, np.inf], np.float32)
    assert compare_array("y", expected, got, Numerics.EXACT).verdict == "fail"
    got = np.array([1.5, 2.0, np.inf], np.float32)
    assert compare_array("y", expected, got, Numerics.EXACT).verdict == "fail"
    assert compare_array("y", np.array([1.0], np.float32), np.array([np.nan], np.float32),
                         Numerics.LOSSY).verdict == "fail", "NaN where the reference is finite is a failure"


def test_integers_must_match_exactly_and_shapes_are_checked() -> None:
    check = compare_array("label", np.array([3, 1]), np.array([3, 2]), Numerics.TOLERANCE)
    assert check.verdict == "fail" and check.worst_index == (1,)
    assert compare_array("y", np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32),
                         Numerics.EXACT).verdict == "fail"
    result = compare_outputs({"a": np.ones(2, np.float32), "b": np.ones(2)}, {"a": np.ones(2, np.float32)},
                             Numerics.EXACT, "onnxruntime")
    assert result.verdict == "fail" and result.outputs[1].note == "output missing"


GATHER = '''graph "g" (%table: f32[7,4], %ids: i64[batch,5], %x: f32[batch,?]) {
  %e: f32[batch,5,4] = Gather(%table, %ids) {axis=0}
  %y: f32[batch,?] = Relu(%x)
  return %e, %y
}'''


def test_generated_inputs_respect_domains_shapes_and_seeds() -> None:
    graph = as_graph(GATHER)
    feeds = make_inputs(graph, InputSpec(seed=3, default_dim=2))
    assert feeds["ids"].shape == (2, 5) and feeds["ids"].min() >= 0 and feeds["ids"].max() < 7
    assert feeds["x"].shape == (2, 2), "symbolic dims bind once; unknown dims take the default"
    again = make_inputs(graph, InputSpec(seed=3, default_dim=2))
    assert all(np.array_equal(feeds[k], again[k]) for k in feeds)
    spec = InputSpec(shapes=parse_shape_flags(["x:3,9"]), ranges=parse_range_flags(["x:5,6"]))
    fed = make_inputs(graph, spec)
    x = fed["x"]
    assert x.shape == (3, 9) and x.min() >= 5 and x.max() <= 6
    assert fed["ids"].shape == (3, 5), "a given shape binds its symbols (batch) for every input"
    with pytest.raises(BadInputError):
        parse_range_flags(["x:1"])
    with pytest.raises(BadInputError):
        parse_shape_flags(["x"])


def test_user_inputs_are_checked_against_the_model(tmp_path) -> None:
    graph = as_graph(GATHER)
    path = tmp_path / "in.npz"
    np.savez(path, table=np.zeros((7, 4), np.float32), ids=np.zeros((1, 5), np.int64))
    with pytest.raises(BadInputError, match="no value for input x"):
        load_inputs(path, graph)
    np.savez(path, table=np.zeros((7, 4), np.float32), ids=np.zeros((1, 5), np.int64),
             x=np.zeros((1, 2), np.float32), nope=np.zeros(1))
    with pytest.raises(BadInputError, match="nope is not an input"):
        load_inputs(path, graph)


def test_both_references_agree_and_expose_intermediates() -> None:
    graph = as_graph(GATHER)
    feeds = make_inputs(graph, InputSpec(seed=0))
    ort = run_graph(graph, feeds, outputs=["e", "y"])
    ref = run_graph(graph, feeds, outputs=["e", "y"], engine=REFERENCE)
    assert compare_outputs(ort, ref, Numerics.EXACT, "onnxruntime").verdict == "ok"
    chain = as_graph('''graph "g" (%x: f32[3]) {
  %a: f32[3] = Neg(%x)
  %y: f32[3] = Relu(%a)
  return %y
}''')
    values = run_graph(chain, {"x": np.array([1.0, -2.0, 3.0], np.float32)}, outputs=["a", "y"])
    assert values["a"].tolist() == [-1.0, 2.0, -3.0] and values["y"].tolist() == [0.0, 2.0, 0.0]


def test_checks_tolerate_dead_large_constants_left_for_dce() -> None:
    """A pass may leave unread weights for dce; onnxruntime drops unread initializers and would
    then refuse their in-memory values, so the checker hands over only what the graph reads."""
    import numpy as np

    from mlc.numerics.reference import WeightCache, run_model
    from mlc.testing import as_graph

    graph = as_graph('''graph "g" (%x: f32[4]) {
  %y: f32[4] = Relu(%x)
  return %y
}''')
    graph.make_constant(np.ones((64, 64), np.float32), "dead")  # 16 KB, above the in-memory threshold
    prepared = WeightCache().prepare(graph)
    out = run_model(prepared, {"x": np.array([-1.0, 0.0, 1.0, 2.0], np.float32)})
    assert np.array_equal(next(iter(out.values())), [0.0, 0.0, 1.0, 2.0])


def test_integer_mask_inputs_are_zero_or_one_with_no_row_fully_masked() -> None:
    from mlc.numerics.inputs import InputSpec, make_inputs
    from mlc.testing import as_graph

    graph = as_graph('''graph "g" (%attention_mask: i64[4,16], %count: i64[4]) {
  %c: f32[4,16] = Cast(%attention_mask) {to = 1}
  %k: f32[4] = Cast(%count) {to = 1}
  return %c, %k
}''')
    feeds = make_inputs(graph, InputSpec(seed=3))
    mask = feeds["attention_mask"]
    assert set(np.unique(mask)) <= {0, 1} and mask[:, 0].all() and (mask == 0).any()
    assert feeds["count"].max() > 1  # other integers keep the default range
