"""The fuzzer's generator: deterministic per seed, and every case it makes is a valid model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mlc.fuzzing import Case, generate, validate
from mlc.fuzzing.generator import GeneratorConfig
from mlc.fuzzing.known_bugs import KNOWN_BUGS, hits
from mlc.fuzzing.ops_shape import slice_length


@pytest.mark.parametrize("seed", [0, 7, 123, 4242])
def test_same_seed_same_bytes_and_feeds(seed: int) -> None:
    a, b = generate(seed), generate(seed)
    assert a.model_bytes() == b.model_bytes()
    assert a.feeds.keys() == b.feeds.keys()
    for name in a.feeds:
        assert a.feeds[name].dtype == b.feeds[name].dtype
        assert np.array_equal(a.feeds[name], b.feeds[name], equal_nan=True)


def test_different_seeds_differ() -> None:
    assert len({generate(seed).model_bytes() for seed in range(20)}) == 20


def test_cases_are_valid_and_cover_what_the_passes_rewrite() -> None:
    """200 seeds: all valid (checker, strict shape inference, onnxruntime, the generator's own
    shapes), and among them every pattern family the passes look for."""
    features: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    opsets, dtypes, symbolic = set(), set(), 0
    for seed in range(200):
        case = generate(seed)
        assert validate(case) is None, f"seed {seed}: {validate(case)}"
        features.update(case.features)
        ops.update(n.op_type for n in case.model.graph.node)
        opsets.add(case.model.opset_import[0].version)
        dtypes.update(str(v.dtype) for v in case.feeds.values())
        symbolic += any(d.dim_param for i in case.model.graph.input for d in i.type.tensor_type.shape.dim)
    for family in ("batchnorm", "conv-activation", "gemm-activation", "gelu-erf", "gelu-tanh", "layernorm-decomposed",
                   "attention", "skip-layernorm", "bias-gelu", "embed-layernorm", "transpose-chain", "noop-chain",
                   "constant-subgraph", "duplicate-constant", "cse", "if", "loop", "dynamic-reshape", "range"):
        assert features[family], f"no case with {family} in 200 seeds"
    for op in ("Conv", "Gemm", "MatMul", "Reshape", "Transpose", "Slice", "Gather", "Concat", "Where", "Cast",
               "ReduceMean", "Softmax", "LayerNormalization", "Expand", "Pad", "If", "Loop"):
        assert ops[op], f"no {op} in 200 seeds"
    assert opsets >= {13, 17, 18, 20}
    assert {"float32", "float64", "float16", "int64", "bool"} <= dtypes
    assert symbolic >= 40


def test_avoiding_a_known_bug_redraws_only_cases_that_hit_it() -> None:
    """With unit-reduction avoided, no case reduces over a single element (MatMul with an inner
    dim of 1, ReduceMean over an axis of 1, a 1x1 Conv of one channel...); a case that hits none
    is the same as without avoiding."""
    config = GeneratorConfig(avoid=frozenset(KNOWN_BUGS))
    redrawn = 0
    for seed in range(80):
        plain, case = generate(seed), generate(seed, config)
        assert validate(case) is None
        assert hits(case, config.avoid) is None, f"seed {seed}"
        if hits(plain, config.avoid) is None:
            assert case.model_bytes() == plain.model_bytes()
        else:
            redrawn += 1
    assert redrawn, "no seed in 80 hit the bug: the check finds nothing"


@pytest.mark.parametrize(("op", "inner", "hit"), [("MatMul", 3, False), ("MatMul", 1, True),
                                                  ("ReduceSum", 3, False), ("ReduceSum", 1, True)])
def test_unit_reduction_check(op: str, inner: int, hit: bool) -> None:
    """A MatMul over an inner dim of 1, a ReduceSum over an axis of 1 are found; 3 is not."""
    from onnx import TensorProto, helper, numpy_helper

    second = numpy_helper.from_array(np.ones((inner, 2), np.float32) if op == "MatMul" else np.array([1]), "b")
    graph = helper.make_graph([helper.make_node(op, ["x", "b"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, inner])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [second])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    found = hits(Case(model, {"x": np.ones((2, inner), np.float32)}), frozenset(KNOWN_BUGS))
    assert (found is not None) == hit, found
    if hit:
        assert found.startswith(op)


@pytest.mark.parametrize(("start", "end", "step", "dim", "expected"), [
    (0, 5, 1, 5, 5), (-3, -3, -2, 2, 1), (-1, -(2 ** 63), -1, 4, 4), (5, 0, -1, 3, 2), (0, 2 ** 63 - 1, 2, 5, 3),
    (1, -1, 1, 4, 2), (-10, 10, 1, 3, 3), (3, 1, 1, 5, 0),
])
def test_slice_length_follows_onnx_clamping(start: int, end: int, step: int, dim: int, expected: int) -> None:
    """ONNX clamps a negative-step start into [0, dim-1] (Python's slice would make (-3, -3, -2) on 2
    elements empty; ONNX takes element 0)."""
    assert slice_length(start, end, step, dim) == expected
