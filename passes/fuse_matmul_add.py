"""Turn a 2-D MatMul followed by a bias Add into one Gemm.

    Add(MatMul(A, B), bias)   ->   Gemm(A, B, bias)        A [M,K], B [K,N]: both known to be 2-D
    Add(bias, MatMul(A, B))   ->   Gemm(A, B, bias)

Gemm adds C after the product in the same kernel (one pass over the output instead of two), and
runtimes fuse Gemm with what follows more readily than a MatMul+Add pair. Gemm's C broadcasts to
[M, N] in one direction only, so the bias must have rank <= 2 with each dim 1 or equal to the
output's ([N], [1,N], [M,1], [M,N], a scalar); a bias that would enlarge the sum is refused. The
bias need not be constant. MatMul of any other rank (batched, vector) has no Gemm form and is
left alone with a remark, as are MatMuls whose output has other readers, non-float types (Gemm's
integer types differ across opsets) and opsets before 7 (Gemm's old `broadcast` attribute).

`tolerance`: Gemm may accumulate in another order than MatMul followed by Add.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import STANDARD, label, reader_problem, replace_chain

_GEMM_DTYPES = (DType.FLOAT, DType.FLOAT16, DType.DOUBLE)


def _shape(value: Value | None) -> tuple[Dim, ...] | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.shape


def _bias_problem(bias: Value | None, m: Dim, n: Dim) -> str | None:
    shape = _shape(bias)
    if shape is None:
        return "the bias's shape is unknown"
    if len(shape) > 2:
        return f"the bias is {len(shape)}-D (Gemm's C is at most 2-D)"
    padded = (1,) * (2 - len(shape)) + tuple(shape)
    for dim, full in zip(padded, (m, n), strict=True):
        if dim == 1 or (dim is not None and dim == full):
            continue
        return f"the bias of shape {list(shape)} does not broadcast to the product's [{m}, {n}] in one direction"
    return None


@register_pass
class FuseMatMulAdd(Pass):
    name = "fuse-matmul-add"
    description = "Turn a 2-D MatMul plus a broadcastable bias Add into Gemm"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        opset = graph.opset_version("") or 1
        for sub in list(graph.all_graphs()):
            for node in sub:
                if node.op_type != "MatMul" or node.domain not in STANDARD:
                    continue
                add = self._match(node, opset, ctx)
                if add is None:
                    continue
                if not ctx.rewrite("matmul-add"):
                    return changed
                out = node.outputs[0]
                bias = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
                replace_chain(sub, ctx, "matmul-add", [node, add], "Gemm", [node.inputs[0], node.inputs[1], bias], {})
                ctx.stats["fused"] += 1
                changed = True
        return changed

    @staticmethod
    def _match(matmul: Node, opset: int, ctx: PassContext) -> Node | None:
        out = matmul.outputs[0]
        if out is None:
            return None
        adds = [n for n in out.consumers if n.op_type == "Add" and n.domain in STANDARD]
        if not adds:
            return None  # not a candidate
        name = label(matmul)
        why = reader_problem(out)
        if why is not None:
            ctx.remark(f"{name}: not fused, {why}")
            return None
        add = adds[0]
        if add.graph is not matmul.graph:
            ctx.remark(f"{name}: not fused, {label(add)} is in a sub-graph")
            return None
        if opset < 7:
            ctx.remark(f"{name}: not fused, opset {opset} Gemm has the legacy broadcast attribute")
            return None
        a, b = matmul.inputs[0], matmul.inputs[1]
        sa, sb = _shape(a), _shape(b)
        for which, shape in (("A", sa), ("B", sb)):
            if shape is None:
                ctx.remark(f"{name}: not fused, the rank of {which} is unknown (Gemm takes 2-D)")
                return None
            if len(shape) != 2:
                ctx.remark(f"{name}: not fused, {which} is {len(shape)}-D (Gemm takes 2-D)")
                return None
        assert sa is not None and sb is not None and a is not None
        dtype = a.type.dtype if isinstance(a.type, TensorType) else None
        if dtype not in _GEMM_DTYPES:
            ctx.remark(f"{name}: not fused, element type {dtype.short_name if dtype else '?'} is not a float Gemm type")
            return None
        bias = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
        why = _bias_problem(bias, sa[0], sb[1])
        if why is not None:
            ctx.remark(f"{name}: not fused with {label(add)}, {why}")
            return None
        return add
