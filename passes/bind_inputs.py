"""Bind graph inputs to values: the model is specialized to them and no longer takes them.

    input %shape : i64[2]      with shape.npz holding shape = [3, 2]   ->  constant %shape = [3, 2]

ONNX lets the operands that decide a result's shape (Reshape's shape, a Reduce's axes, Resize's
scales, TopK's k, ...) be runtime inputs; compilers that plan memory ahead (TVM's Relax frontend)
need them constant. `--bind-inputs F.npz` compiles the model for the values given; the types
downstream are then inferred again, so the shapes that follow from them become static and fold.
Numerically exact for the bound values: the checks feed the original the same values.
"""

from __future__ import annotations

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.numerics.inputs import read_npz
from mlc.onnx_io.infer import refine_types
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass


def bound_array(name: str, declared: object, array: np.ndarray, shown: str) -> np.ndarray:
    """`array` as the declared input type holds it, or a BadInputError naming what does not fit."""
    if not isinstance(declared, TensorType):
        raise BadInputError(f"{shown}: cannot bind input {name!r}: only tensor inputs can be bound")
    wanted = declared.dtype.numpy
    if array.dtype != wanted:
        converted = array.astype(wanted)
        if not np.array_equal(converted, array):
            raise BadInputError(f"{shown}: cannot bind input {name!r}: values of type {array.dtype} do not fit "
                                f"its element type {np.dtype(wanted)}")
        array = converted
    if not declared.accepts_shape(array.shape):
        raise BadInputError(f"{shown}: cannot bind input {name!r}: shape {list(array.shape)} does not match "
                            f"the declared {declared.shape_text()}")
    return array


@register_pass
class BindInputs(Pass):
    name = "bind-inputs"
    description = "Replace the graph inputs named in an .npz by constants holding its values (--bind-inputs)"
    numerics = Numerics.EXACT
    options = (PassOption("file", str, "", "the .npz of values keyed by input name"),)
    statistics = ("bound", "types_refined")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        path = self.option("file")
        if not path:
            raise BadInputError("bind-inputs: give the values with file=F.npz (--bind-inputs F.npz)")
        values = read_npz(path)
        inputs = {v.name: v for v in graph.inputs}
        for name in values:
            if name not in inputs:
                raise BadInputError(f"{path}: cannot bind input {name!r}: the model has no such input "
                                    f"(inputs: {', '.join(inputs) or 'none'})")
        changed = False
        for name, array in sorted(values.items()):
            value = inputs[name]
            array = bound_array(name, value.type, np.asarray(array), path)
            if not ctx.rewrite("bind-input"):
                break
            graph.inputs.remove(value)
            graph.initializers.pop(name, None)
            value.const = Tensor.from_array(array)
            value.type = TensorType(value.type.dtype, tuple(array.shape))  # type: ignore[union-attr]
            graph.add_initializer(value)
            ctx.stats["bound"] += 1
            changed = True
        if changed:
            ctx.stats["types_refined"] += refine_types(graph)
        return changed
