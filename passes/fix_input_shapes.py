"""Fix graph inputs' dims: symbolic or unknown dims become the sizes the user gives.

    input %ids : i64[batch,seq]     with shapes=ids:1x128      ->  input %ids : i64[1,128]

A model exported with dynamic axes computes its shapes at run time (Shape → Gather → Concat →
Reshape chains); with the dims fixed (`--input-shape NAME:D,D`), the types downstream are
inferred again and those chains fold to constants. The artifact then takes only these shapes.
Numerically exact at those shapes: the checks feed inputs of exactly these shapes.
"""

from __future__ import annotations

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.types import TensorType
from mlc.onnx_io.infer import refine_types
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass


def parse_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """`ids:1x128;mask:1x128` → {ids: (1, 128), mask: (1, 128)} (a scalar is `name:`)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, colon, dims = item.rpartition(":")
        try:
            shapes[name] = tuple(int(d) for d in dims.split("x") if d.strip())
        except ValueError:
            name = ""
        if not colon or not name:
            raise BadInputError(f"fix-input-shapes: bad shape {item!r}; expected NAME:DxD (e.g. ids:1x128)")
    return shapes


def check_shapes(graph: Graph, shapes: dict[str, tuple[int, ...]]) -> None:
    """Each shape names a tensor input of `graph` and agrees with its rank and fixed dims, else a
    one-line BadInputError (checked before any input is generated for it)."""
    inputs = {v.name: v for v in graph.inputs}
    for name, dims in shapes.items():
        value = inputs.get(name)
        if value is None:
            raise BadInputError(f"--input-shape {name}: the model has no such input "
                                f"(inputs: {', '.join(inputs) or 'none'})")
        old = value.type
        if not isinstance(old, TensorType):
            raise BadInputError(f"--input-shape {name}: only tensor inputs have dims")
        if any(d <= 0 for d in dims):
            raise BadInputError(f"--input-shape {name}:{','.join(map(str, dims))}: dims must be positive")
        if not old.accepts_shape(dims):
            raise BadInputError(f"--input-shape {name}:{','.join(map(str, dims))}: the input is declared "
                                f"{old.shape_text()}")


@register_pass
class FixInputShapes(Pass):
    name = "fix-input-shapes"
    description = "Give graph inputs static dims (--input-shape) and infer the types that follow"
    numerics = Numerics.EXACT
    options = (PassOption("shapes", str, "", "NAME:DxD;NAME:DxD, e.g. ids:1x128"),)
    statistics = ("inputs_fixed", "types_refined")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        shapes = parse_shapes(self.option("shapes"))
        check_shapes(graph, shapes)
        inputs = {v.name: v for v in graph.inputs}
        changed = False
        for name, dims in shapes.items():
            value = inputs[name]
            old = value.type
            assert isinstance(old, TensorType)
            if old.shape == dims:
                continue
            if not ctx.rewrite("fix-dims"):
                break
            value.type = TensorType(old.dtype, dims)
            ctx.stats["inputs_fixed"] += 1
            changed = True
        if changed:
            ctx.stats["types_refined"] += refine_types(graph)
        return changed
