"""The numpy table of constant evaluation (mlc.ir.constant_ops) against onnx's reference evaluator:
for every op of the table, over the dtypes it claims and shapes with broadcasting, scalars and empty
tensors, `evaluate_node` (which asks the table first) gives bit for bit what the reference evaluator
gives (dtype, shape, bytes: NaNs included); where the reference evaluator refuses the inputs, so
does the table; and fold-constants folds table ops without the reference evaluator."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import mlc.numerics.evaluate as evaluate_module
from mlc.ir.constant_ops import TABLE, evaluate_constant
from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.numerics.evaluate import EvaluationError, _by_reference, evaluate_node
from mlc.testing import run_pass

OPSET = 18
FLOATS = [np.float16, np.float32, np.float64]
SIGNED = [np.int8, np.int16, np.int32, np.int64]
INTS = [*SIGNED, np.uint8, np.uint16, np.uint32, np.uint64]
NUMERIC = FLOATS + INTS
PLAIN = [*NUMERIC, np.bool_]
BINARY_SHAPES = [((), ()), ((3,), ()), ((), (4,)), ((2, 3), (3,)), ((2, 1, 4), (3, 1)), ((0, 3), (3,)),
                 ((0,), (1,)), ((4, 5), (4, 5)), ((1,), (2, 0))]
UNARY_SHAPES = [(), (1,), (7,), (2, 3), (0,), (3, 0, 2)]


def values(rng: np.random.Generator, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Random values of `dtype` with the awkward ones mixed in: NaN, +-Inf, -0, extremes, zero."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind == "f":
        info = np.finfo(dtype)
        special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, info.max, info.min, info.tiny, 1.0, -3.5], dtype)
        array = (rng.standard_normal(shape) * 10).astype(dtype)
    else:
        info = np.iinfo(dtype)  # type: ignore[assignment]
        special = np.array([info.min, info.max, 0, 1, info.max // 2], dtype)
        if dtype.kind == "i":
            special = np.concatenate([special, np.array([-1, -7], dtype)])
        array = rng.integers(max(int(info.min), -50), min(int(info.max), 50), shape, dtype=dtype, endpoint=True)
    flat = array.reshape(-1)
    picks = rng.random(flat.shape) < 0.3
    flat[picks] = rng.choice(special, int(picks.sum()))
    return array


def make_node(op: str, arrays: list[np.ndarray | None], out: Any, attrs: dict[str, Any] | None = None,
              domain: str = "") -> Node:
    ins = [None if a is None else Value(f"i{k}", TensorType(DType.from_numpy(a.dtype), a.shape))
           for k, a in enumerate(arrays)]
    declared = None if out is None else TensorType(DType.from_numpy(np.dtype(out)))  # None: no cast
    return Node(op, ins, [Value("o", declared)], attrs, domain=domain)


def assert_identical(got: list[np.ndarray | None], want: list[np.ndarray | None], what: str) -> None:
    assert len(got) == len(want), what
    for g, w in zip(got, want, strict=True):
        assert g is not None and w is not None, what
        assert g.dtype == w.dtype and g.shape == w.shape, f"{what}: {g.dtype}{g.shape} != {w.dtype}{w.shape}"
        assert g.tobytes() == w.tobytes(), f"{what}: values differ\n{g!r}\n{w!r}"


def check(op: str, arrays: list[np.ndarray | None], attrs: dict[str, Any] | None = None, out: Any = None,
          opset: int = OPSET) -> None:
    """The table takes the node, and gives what the reference evaluator gives."""
    opsets = {"": opset}
    node = make_node(op, arrays, out, attrs)  # out None: no declared type, so no cast hides a difference
    shown = [a if a is None else a.tolist() if a.size <= 4 else f"{a.dtype}{a.shape}" for a in arrays]
    what = f"{op}{attrs or ''} on {shown}"
    assert evaluate_constant(node, arrays, opset) is not None, f"the table declines {what}"
    assert_identical(evaluate_node(node, arrays, opsets), _by_reference(node, arrays, opsets), what)


def refused(op: str, arrays: list[np.ndarray | None], attrs: dict[str, Any] | None = None, opset: int = OPSET,
            domain: str = "") -> None:
    """The table declines the node: evaluate_node gives what the reference evaluator gives, or fails as it does."""
    node = make_node(op, arrays, np.float32, attrs, domain)
    assert evaluate_constant(node, arrays, opset) is None, f"the table takes {op} on {[a.dtype for a in arrays]}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(18)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Equal", "Less", "Greater"])
def test_binary_ops(op: str, rng: np.random.Generator) -> None:
    dtypes = PLAIN if op == "Equal" else NUMERIC
    for dtype, (a, b) in itertools.product(dtypes, BINARY_SHAPES):
        check(op, [values(rng, dtype, a), values(rng, dtype, b)])


def test_integer_division_truncates_like_the_reference() -> None:
    for dtype in SIGNED:
        info = np.iinfo(dtype)
        x = np.array([7, -7, 7, -7, 0, info.min, info.min, 5, -5, info.max], dtype)
        y = np.array([2, 2, -2, -2, 3, -1, 1, 0, 0, -1], dtype)
        check("Div", [x, y])
        check("Div", [x, y[::-1].copy()])


@pytest.mark.parametrize("op", ["Neg", "Abs", "Sqrt", "Exp"])
def test_unary_ops(op: str, rng: np.random.Generator) -> None:
    dtypes = {"Neg": FLOATS + SIGNED, "Abs": NUMERIC}.get(op, FLOATS)
    for dtype, shape in itertools.product(dtypes, UNARY_SHAPES):
        check(op, [values(rng, dtype, shape)])


def test_logical_ops(rng: np.random.Generator) -> None:
    for shape in UNARY_SHAPES:
        check("Not", [values(rng, np.bool_, shape)])
    for (a, b), op in itertools.product(BINARY_SHAPES, ["And", "Or"]):
        check(op, [values(rng, np.bool_, a), values(rng, np.bool_, b)])


def test_where(rng: np.random.Generator) -> None:
    shapes = [((), (), ()), ((3,), (3,), ()), ((2, 1), (3,), (2, 3)), ((0, 2), (2,), (1, 2)), ((4,), (1,), (4,))]
    for dtype, (c, x, y) in itertools.product(PLAIN, shapes):
        check("Where", [values(rng, np.bool_, c), values(rng, dtype, x), values(rng, dtype, y)])


def in_range(rng: np.random.Generator, source: Any, target: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Floats that truncate into an integer target's range (whatever else: `values`)."""
    if np.dtype(source).kind != "f" or np.dtype(target).kind not in "iu":
        return values(rng, source, shape)
    info, top = np.iinfo(target), float(np.finfo(source).max)
    low, high = max(float(info.min), -top), min(float(info.max), top)
    picked = np.concatenate([rng.uniform(-0.99 if info.min == 0 else low, high, shape).reshape(-1),
                             rng.uniform(-100, 100, shape).reshape(-1).clip(-0.99 if info.min == 0 else None)])
    return picked[: int(np.prod(shape))].reshape(shape).astype(source).clip(low, high)


def test_cast(rng: np.random.Generator) -> None:
    for source, target in itertools.product(PLAIN, PLAIN):
        code = int(DType.from_numpy(np.dtype(target)))
        for shape in [(), (5,), (2, 3), (0,)]:
            for opset in (13, 19, 21):
                check("Cast", [in_range(rng, source, target, shape)], {"to": code}, opset=opset)


def test_cast_of_nan_inf_or_out_of_range_floats_to_integers_falls_back() -> None:
    for source, target in itertools.product(FLOATS, INTS):
        for bad in [np.nan, np.inf, -np.inf, 1e30 if source != np.float16 else 65504.0]:
            if bad == 65504.0 and np.iinfo(target).max >= 65504:
                bad = -65504.0 if np.iinfo(target).min == 0 else -np.inf
            x = np.array([1.0, bad], source)
            node = make_node("Cast", [x], target, {"to": int(DType.from_numpy(np.dtype(target)))})
            assert evaluate_constant(node, [x], OPSET) is None, (source, target, bad)
            assert_identical(evaluate_node(node, [x], {"": OPSET}), _by_reference(node, [x], {"": OPSET}), "fallback")


def test_concat(rng: np.random.Generator) -> None:
    for dtype in PLAIN:
        for shapes, axis in [([(3,)], 0), ([(2,), (0,), (3,)], 0), ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1)], -1),
                             ([(1, 2, 3), (1, 2, 0), (1, 2, 2)], 2), ([(0, 2), (0, 2)], 1)]:
            check("Concat", [values(rng, dtype, s) for s in shapes], {"axis": axis})


def test_gather(rng: np.random.Generator) -> None:
    for dtype, index_dtype in itertools.product(PLAIN, [np.int32, np.int64]):
        data = values(rng, dtype, (4, 3))
        for axis, indices in [(0, np.array(1)), (0, np.array(-1)), (1, np.array([0, -3, 2, -1])), (-1, np.array(2)),
                              (0, np.array([[0, -4], [3, 1]])), (1, np.zeros((0,), int)), (-2, np.array([-2]))]:
            check("Gather", [data, indices.astype(index_dtype)], {"axis": axis})
        check("Gather", [values(rng, dtype, (5,)), np.array([4, -5, 0], index_dtype)])  # axis by default


def test_transpose(rng: np.random.Generator) -> None:
    for dtype in PLAIN:
        check("Transpose", [values(rng, dtype, ())])
        check("Transpose", [values(rng, dtype, (2, 3, 4))])
        check("Transpose", [values(rng, dtype, (2, 0, 4))], {"perm": [1, 2, 0]})
        check("Transpose", [values(rng, dtype, (2, 3, 4, 1))], {"perm": [3, 1, 0, 2]})


def test_slice(rng: np.random.Generator) -> None:
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for dtype, index_dtype in itertools.product(PLAIN, [np.int32, np.int64]):
        data = values(rng, dtype, (5, 4, 3))
        for _ in range(12):
            n = int(rng.integers(1, 4))
            axes = rng.permutation(3)[:n] - rng.integers(0, 2, n) * 3  # some negative
            starts = rng.integers(-7, 7, n)
            ends = rng.integers(-7, 7, n)
            steps = rng.choice([-3, -2, -1, 1, 2, 3], n)
            given = [data, starts, ends, axes, steps]
            for omit in ([], [4], [3, 4], [3]):
                arrays = [None if k in omit or a is None else np.asarray(a).astype(index_dtype) if k else a
                          for k, a in enumerate(given)]
                if 3 in omit:  # no axes: the leading ones, as many as starts
                    arrays[1:3] = [np.asarray(a)[:1].astype(index_dtype) for a in given[1:3]]
                    arrays[4] = None if 4 in omit else np.asarray(steps[:1]).astype(index_dtype)
                while arrays[-1] is None:
                    arrays.pop()
                check("Slice", arrays)
        check("Slice", [data, np.array([0, -1], np.int64), np.array([big, small], np.int64), np.array([0, 1]),
                        np.array([1, -1])])
        check("Slice", [values(rng, dtype, (0, 3)), np.array(1), np.array(big)])  # scalar starts and ends


def test_every_table_op_is_checked() -> None:
    checked = {"Add", "Sub", "Mul", "Div", "Equal", "Less", "Greater", "Neg", "Abs", "Sqrt", "Exp", "Not", "And",
               "Or", "Where", "Cast", "Concat", "Gather", "Transpose", "Slice"}
    assert set(TABLE) == checked


def refusals() -> Iterator[tuple[str, list[np.ndarray | None], dict[str, Any] | None, int, str]]:
    f, i, b = np.ones((2, 3), np.float32), np.ones((3,), np.int64), np.ones((3,), bool)
    yield "Add", [f, f.astype(np.float64)], None, OPSET, ""  # mixed dtypes: the reference refuses
    yield "Add", [f, f], None, 6, ""  # before broadcasting: the old semantics
    yield "Add", [f, f], {"broadcast": 1}, OPSET, ""  # an attribute the kernel does not know
    yield "Add", [f, f], None, OPSET, "com.microsoft"
    yield "Add", [b, b], None, OPSET, ""  # not a numeric type of Add
    yield "Sqrt", [i], None, OPSET, ""
    yield "Not", [i], None, OPSET, ""
    yield "Where", [i, f, f], None, OPSET, ""  # a condition that is not bool
    yield "Concat", [np.array(1.0), np.array(2.0)], {"axis": 0}, OPSET, ""  # scalars: the reference refuses
    yield "Concat", [f, f], {"axis": 2}, OPSET, ""
    yield "Concat", [f, f], None, OPSET, ""
    yield "Gather", [f, np.array([2])], {"axis": 0}, OPSET, ""  # out of range
    yield "Gather", [f, np.array([-3])], {"axis": 0}, OPSET, ""
    yield "Gather", [f, np.array([0.0])], {"axis": 0}, OPSET, ""
    yield "Transpose", [f], {"perm": [0]}, OPSET, ""
    yield "Slice", [f, np.array([0, 0]), np.array([1])], None, OPSET, ""  # lengths differ: the reference drops one
    yield "Slice", [f, np.array([0]), np.array([1]), None, np.array([0])], None, OPSET, ""  # step 0
    yield "Slice", [f, np.array([0]), np.array([1]), np.array([2])], None, OPSET, ""  # no such axis
    yield "Slice", [f, np.array([0, 0, 0]), np.array([1, 1, 1])], None, OPSET, ""  # more axes than data has
    yield "Slice", [f, np.array([0.0]), np.array([1.0])], None, OPSET, ""
    yield "Slice", [f, np.array([0]), np.array([1])], None, 9, ""  # Slice-1 took attributes
    yield "Cast", [f], {"to": int(DType.FLOAT8E4M3FN)}, OPSET, ""  # saturating float8: the reference's own
    yield "Cast", [f], {"to": int(DType.STRING)}, OPSET, ""
    yield "Cast", [np.array(["1"], object)], {"to": int(DType.FLOAT)}, OPSET, ""


@pytest.mark.parametrize(("op", "arrays", "attrs", "opset", "domain"), list(refusals()))
def test_the_table_declines_what_it_cannot_be_sure_of(op: str, arrays: list[np.ndarray | None],
                                                     attrs: dict[str, Any] | None, opset: int, domain: str) -> None:
    refused(op, arrays, attrs, opset, domain)
    if domain or op == "Cast":
        return
    node = make_node(op, arrays, np.float32, attrs)
    try:
        want = _by_reference(node, arrays, {"": opset})
    except EvaluationError:
        with pytest.raises(EvaluationError):
            evaluate_node(node, arrays, {"": opset})
    else:
        assert_identical(evaluate_node(node, arrays, {"": opset}), want, op)


def test_declared_output_type_is_applied_to_table_results() -> None:
    x = np.array([1.5, 70000.0, -2.0], np.float32)
    node = make_node("Add", [x, x], np.float16)
    got = evaluate_node(node, [x, x], {"": OPSET})
    assert_identical(got, _by_reference(node, [x, x], {"": OPSET}), "Add declared f16")
    assert got[0] is not None and got[0].dtype == np.float16


FOLDS = '''graph "g" (%x: f32[3]) {
  const %a = dense<f32[3]> [1.0, 2.0, 3.0]
  const %b = dense<f32[3]> [0.5, -0.25, 4.0]
  %s: f32[3] = Mul(%a, %b)
  %f: f32[3] = Floor(%b)
  %y: f32[3] = Add(%x, %s)
  %z: f32[3] = Add(%y, %f)
  return %z
}'''


def test_fold_constants_folds_table_ops_without_the_reference_evaluator(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def unavailable(node: Node, inputs: Any, opsets: Any) -> Any:
        calls.append(node.op_type)
        raise EvaluationError("the reference evaluator is switched off in this test")

    monkeypatch.setattr(evaluate_module, "_by_reference", unavailable)
    graph, ctx = run_pass("fold-constants", FOLDS)
    assert calls == ["Floor"], calls  # Mul came from the table; Floor is not in it
    assert [n.op_type for n in graph] == ["Floor", "Add", "Add"], [n.op_type for n in graph]
    assert ctx.stats["folded"] == 1 and ctx.stats["skipped_error"] == 1, ctx.stats
    s = graph.nodes[1].inputs[1].const
    assert s is not None and s.numpy().tolist() == [0.5, -0.5, 12.0]


def test_fold_constants_falls_back_to_the_reference_evaluator_for_other_ops() -> None:
    graph, ctx = run_pass("fold-constants", FOLDS)
    assert [n.op_type for n in graph] == ["Add", "Add"] and ctx.stats["folded"] == 2, ctx.stats
    floor = graph.nodes[1].inputs[1].const
    assert floor is not None and floor.numpy().tolist() == [0.0, -1.0, 4.0]
