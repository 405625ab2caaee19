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

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import Numerics, register_pass
from mlc.passes._match_basics import STANDARD, label, reader_problem
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass

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


class MatMulAdd(Rule):
    name = "matmul-add"
    law = "Add(MatMul(A, B), C) -> Gemm(A, B, C)   (A, B 2-D; C broadcasts to [M, N])"
    ops = ("MatMul",)

    def match(self, matmul: Node) -> Match | Reject | None:
        out = matmul.outputs[0]
        adds = [n for n in out.consumers if n.op_type == "Add" and n.domain in STANDARD] if out else []
        if out is None or not adds:
            return None  # not a candidate
        add = adds[0]
        bias = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
        why = reader_problem(out)
        if why is None and add.graph is not matmul.graph:
            why = f"{label(add)} is in a sub-graph"
        if why is None and (opset := (matmul.graph.opset_version("") if matmul.graph else None) or 1) < 7:
            why = f"opset {opset} Gemm has the legacy broadcast attribute"
        why = why or _operand_problem(matmul)
        if why is None:
            sa, sb = _shape(matmul.inputs[0]), _shape(matmul.inputs[1])
            assert sa is not None and sb is not None
            problem = _bias_problem(bias, sa[0], sb[1])
            why = None if problem is None else f"with {label(add)}, {problem}"
        if why is not None:
            return self.reject(matmul, why)
        return Match(matmul, nodes=(matmul, add), values={"bias": bias})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        matmul, add = match.nodes
        builder.fuse_chain([matmul, add], "Gemm", [matmul.inputs[0], matmul.inputs[1], match.values["bias"]])
        builder.ctx.stats["fused"] += 1


def _operand_problem(matmul: Node) -> str | None:
    """Why A and B are not a float Gemm's 2-D operands."""
    for which, value in (("A", matmul.inputs[0]), ("B", matmul.inputs[1])):
        shape = _shape(value)
        if shape is None:
            return f"the rank of {which} is unknown (Gemm takes 2-D)"
        if len(shape) != 2:
            return f"{which} is {len(shape)}-D (Gemm takes 2-D)"
    a = matmul.inputs[0]
    dtype = a.type.dtype if a is not None and isinstance(a.type, TensorType) else None
    if dtype not in _GEMM_DTYPES:
        return f"element type {dtype.short_name if dtype else '?'} is not a float Gemm type"
    return None


@register_pass
class FuseMatMulAdd(RulePass):
    name = "fuse-matmul-add"
    description = "Turn a 2-D MatMul plus a broadcastable bias Add into Gemm"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = (MatMulAdd(),)
