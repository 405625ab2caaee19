"""Shapes of case that a campaign can steer away from (`GeneratorConfig.avoid`), each a bug the
fuzzer found: while such a bug is open, a campaign that avoids it finds the next bug instead of
the same one again; once it is fixed, the entry stays so that a reproducer naming it
(`--avoid NAME` changes what a seed generates) still means the same case.

`unit-reduction` (llvm), fixed: `tvm_sched_generic.ElementwiseRule` took a kernel whose reduction
has a total extent of 1 (MatMul/Gemm with an inner dim of 1, a Conv reading one input channel
through a 1x1 kernel, ReduceMean over an axis of 1, ...): `normalize_prim_func` drops the unit
reduction loop, so the block looked spatial, and inlining the epilogue into it (its `T.init` still
there) applied the epilogue twice: `y = b + (b + x*w)`. Found by seeds 53 (MatMul [4,5,1]x[1,3] +
bias), 40 (Gemm K=1 + bias + Reshape + GlobalAveragePool) and 15 (ReduceMean over [N,1] axis -1,
Mul, Add); the rule now refuses a block with an init and no reduction loop
(tests/fuzz/test_seeds.py::test_seed_53_...). The check reads the shapes onnxruntime computes for
every value on the case's feeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx  # noqa: TID251 - reads the generated model's nodes

from mlc.fuzzing.case import Case

KNOWN_BUGS = {
    "unit-reduction": "llvm, fixed: a reduction of total extent 1 with an epilogue computed the epilogue twice "
                      "(tvm_sched_generic.ElementwiseRule; fuzz seeds 53, 40, 15)",
}


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _axes(node: onnx.NodeProto, rank: int, constants: dict[str, np.ndarray]) -> list[int]:
    axes = _attr(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1] in constants:
        axes = [int(a) for a in constants[node.input[1]].reshape(-1)]
    if not axes:
        return list(range(rank))
    return [int(a) % rank for a in axes]


def reduction_extent(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]],
                     constants: dict[str, np.ndarray]) -> int | None:
    """How many elements one output element of `node` reduces over (None: not a reduction, or
    shapes unknown)."""
    x = shapes.get(node.input[0]) if node.input else None
    if x is None:
        return None
    op = node.op_type
    if op == "MatMul":
        return x[-1] if x else None
    if op == "Gemm":
        return x[0] if _attr(node, "transA", 0) else x[1]
    if op in ("Conv", "ConvTranspose"):
        w = shapes.get(node.input[1])
        if w is None:
            return None
        group = int(_attr(node, "group", 1))
        channels = w[1] if op == "Conv" else w[0] // group
        return int(channels * np.prod(w[2:]))
    if op.startswith("Reduce"):
        return int(np.prod([x[a] for a in _axes(node, len(x), constants)])) if x else 1
    if op in ("Softmax", "LogSoftmax", "ArgMax", "ArgMin"):
        axis = int(_attr(node, "axis", -1 if op.endswith("Softmax") else 0))
        return x[axis % len(x)] if x else None
    if op == "LayerNormalization":
        axis = int(_attr(node, "axis", -1)) % len(x)
        return int(np.prod(x[axis:]))
    if op in ("MaxPool", "AveragePool"):
        return int(np.prod(_attr(node, "kernel_shape", [2])))
    if op in ("GlobalAveragePool", "GlobalMaxPool", "InstanceNormalization"):
        return int(np.prod(x[2:]))
    return None


def unit_reduction(case: Case, shapes: dict[str, tuple[int, ...]]) -> str | None:
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in case.model.graph.initializer}
    for node in case.model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    constants[node.output[0]] = onnx.numpy_helper.to_array(a.t)
    for node in case.model.graph.node:
        if reduction_extent(node, shapes, constants) == 1:
            return f"{node.op_type} {node.name} reduces over one element"
    return None


CHECKS: dict[str, Callable[[Case, dict[str, tuple[int, ...]]], str | None]] = {"unit-reduction": unit_reduction}


def hits(case: Case, avoid: frozenset[str]) -> str | None:
    """Which avoided known bug `case` would hit (a phrase), or None."""
    wanted = [CHECKS[name] for name in sorted(avoid) if name in CHECKS]
    if not wanted:
        return None
    from mlc.fuzzing.minimize import value_shapes

    shapes = value_shapes(case)
    for check in wanted:
        found = check(case, shapes)
        if found is not None:
            return found
    return None
