"""legalize-tvm's LayerNormalization rules: the statistics outputs, and float64.

TVM returns scalars for LayerNormalization's Mean / InvStdDev outputs, and its layer_norm takes
float32 and float16 only (a float64 one fails the build, fuzz seed 15). `layernorm-stats` computes
the statistics beside the node (ReduceMean over the normalized axes and 1 / Sqrt(variance + eps),
in float32: stash_type 1) and leaves it only Y; `layernorm-f64` writes the whole definition out in
float64, as onnxruntime computes it.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._tvm_math_rules import scalar
from mlc.rewrite import IRBuilder, Match, Reject, Rule


def normalized_axes(node: Node, rank: int) -> list[int]:
    """The axes LayerNormalization normalizes over: `axis` to the last."""
    axis = node.attr("axis", -1)
    return list(range(axis + rank if axis < 0 else axis, rank))


def _reduce_mean(b: IRBuilder, value: Value, axes: list[int], stat: TensorType) -> Value:
    """ReduceMean keeping dims, its axes an input from opset 18 and an attribute before."""
    if (b.graph.opset_version("") or 17) >= 18:
        return b.op("ReduceMean", [value, b.constant(np.array(axes, np.int64), "axes")], {"keepdims": 1}, type=stat)
    return b.op("ReduceMean", [value], {"axes": axes, "keepdims": 1}, type=stat)


def _statistics(b: IRBuilder, node: Node, x: Value, axes: list[int], stat: TensorType) -> tuple[Value, Value, Value]:
    """(x - mean, mean, 1 / Sqrt(variance + eps)) in x's type (float32 or float64)."""
    assert isinstance(x.type, TensorType)
    mean = _reduce_mean(b, x, axes, stat)
    centered = b.op("Sub", [x, mean], type=x.type)
    variance = _reduce_mean(b, b.op("Mul", [centered, centered], type=x.type), axes, stat)
    eps = scalar(b, float(node.attr("epsilon", 1e-5)), stat.dtype)
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [variance, eps], type=stat)], type=stat)], type=stat)
    return centered, mean, inv


def _read(value: Value | None) -> bool:
    return value is not None and bool(value.uses or value.is_graph_output)


def _output(node: Node, index: int) -> Value | None:
    return node.outputs[index] if index < len(node.outputs) else None


class LayerNormStatsRule(Rule):
    name = "layernorm-stats"
    law = "LayerNormalization -> Mean, InvStdDev computed beside it in float32; the node keeps Y"
    ops = ("LayerNormalization",)

    def match(self, node: Node) -> Match | Reject | None:
        if not any(_read(v) for v in node.outputs[1:3]):
            return None
        x = node.inputs[0]
        if x is None or not isinstance(x.type, TensorType) or x.type.shape is None:
            return self.reject(node, "its input's rank is unknown")
        if node.attr("stash_type", 1) != 1 or not x.type.dtype.is_float:
            return self.reject(node, "stash_type is not float32")
        return Match(node, values={"x": x}, facts={"axes": normalized_axes(node, len(x.type.shape))})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, x, axes = match.root, match["x"], match.facts["axes"]
        assert isinstance(x.type, TensorType) and x.type.shape is not None
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.type.shape))
        wide = TensorType(DType.FLOAT, x.type.shape)
        xs = x if x.type.dtype == DType.FLOAT else builder.op("Cast", [x], {"to": int(DType.FLOAT)}, type=wide)
        _, mean, inv = _statistics(builder, node, xs, axes, TensorType(DType.FLOAT, shape))
        for index, value in ((1, mean), (2, inv)):
            old = _output(node, index)
            if old is not None and _read(old):
                builder.replace(old, value)
        for index in (2, 1):
            if _output(node, index) is not None:
                node.drop_output(index)
        builder.ctx.stats["rewritten"] += 1


class LayerNormDoubleRule(Rule):
    name = "layernorm-f64"
    law = "LayerNormalization(x: f64) -> (x - mean) * 1 / Sqrt(ReduceMean((x - mean)²) + eps) * scale + bias"
    ops = ("LayerNormalization",)

    def match(self, node: Node) -> Match | Reject | None:
        x = node.inputs[0] if node.inputs else None
        if x is None or not isinstance(x.type, TensorType) or x.type.dtype != DType.DOUBLE or x.type.shape is None:
            return None
        return Match(node)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node = match.root
        x, scale = node.inputs[0], node.inputs[1]
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        assert x is not None and scale is not None and isinstance(x.type, TensorType)
        t, shape = x.type, x.type.shape
        assert shape is not None
        axes = normalized_axes(node, len(shape))
        stat = TensorType(DType.DOUBLE, tuple(1 if i in axes else d for i, d in enumerate(shape)))
        centered, mean, inv = _statistics(builder, node, x, axes, stat)
        y = builder.op("Mul", [builder.op("Mul", [centered, inv], type=t), scale], type=t)
        if bias is not None:
            y = builder.op("Add", [y, bias], type=t)
        for index, value in ((0, y), (1, mean), (2, inv)):
            old = _output(node, index)
            if old is None or not _read(old):
                continue
            if isinstance(old.type, TensorType) and old.type.dtype != DType.DOUBLE:
                cast_type = TensorType(old.type.dtype, stat.shape)
                value = builder.op("Cast", [value], {"to": int(old.type.dtype)}, type=cast_type)
            builder.replace(old, value)
        builder.graph.remove(node)
        builder.ctx.stats["rewritten"] += 1


__all__ = ["LayerNormDoubleRule", "LayerNormStatsRule", "normalized_axes"]
