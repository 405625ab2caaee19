"""Turn a linear layer written on flattened rows back into MatMul + Add on the N-D input.

GPT-2's `Conv1D` (and any `addmm` on `x.view(-1, x.size(-1))`) exports as

    %f = Reshape(%x, [-1, K])                       x [B, S, K]
    %g = Gemm(%f, %W, %b)                            [B*S, N]
    %t = Concat(Unsqueeze(Gather(Shape(%x), 0)), Unsqueeze(Gather(Shape(%x), 1)), [N])
    %y = Reshape(%g, %t)                             [B, S, N]

which is `Add(MatMul(%x, %W), %b)`: MatMul treats the leading dims as a batch of rows. The
rewrite removes the two Reshapes and the Shape→Gather→Unsqueeze→Concat chain that rebuilds the
leading dims (6 nodes per layer for a 3-D input, left to `dce`), gives `%y` the input's leading
dims (which shape inference could not see through the flattening, so it had made up fresh
symbols), and leaves the same MatMul + Add that the rest of the model uses, so that the
transformer fusions (layer norm, GELU, attention's packed QKV projection) see one form.

Matched only when the restoring target provably is x's leading dims followed by N: a constant
equal to x's static leading dims, or a Concat whose parts are dims of x (or of a tensor whose dim
is known equal) at the same positions; and the flattening target is [-1, K] with K x's last dim.
Gemm's `transB` and `alpha` are folded into a constant weight (a non-constant weight needs them at
their defaults), `beta` into a constant bias; a bias must broadcast along the rows ([N], [1, N] or
a scalar): a per-row bias [B*S, 1] has no N-D form here. `transA` must be 0.

`tolerance`: MatMul then Add may round differently from Gemm's fused accumulation.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import Numerics, register_pass
from mlc.passes._graph_edits import drop_dead_constants
from mlc.passes._match_basics import const_array, dtype_of, input_at, label
from mlc.passes._shape_trace import const_ints, dim_source, same_dim
from mlc.passes._transformer_match import dims_of, producer, sole_reader
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


def _restores_leading_dims(target: Value, x: Value, n: int) -> bool:
    """Whether Reshape target `target` is x's leading dims followed by n (or -1)."""
    dims = dims_of(x)
    assert dims is not None
    entries = const_ints(target)
    if entries is not None:
        return (len(entries) == len(dims) and entries[-1] in (n, -1)
                and all(isinstance(d, int) and e == d for e, d in zip(entries[:-1], dims[:-1], strict=True)))
    concat = producer(target, "Concat")
    if concat is None or concat.attr("axis") not in (0, -1):
        return False
    position = 0
    for part in concat.inputs:
        if part is None:
            return False
        values = const_ints(part)
        if values is None:
            source = dim_source(part)
            if source is None or position >= len(dims) - 1 or not same_dim(x, position, *source):
                return False
            position += 1
            continue
        for value in values:
            if position == len(dims) - 1:
                if value not in (n, -1):
                    return False
            elif not (isinstance(dims[position], int) and value == dims[position]):
                return False
            position += 1
    return position == len(dims)


class UnflattenRule(Rule):
    name = "unflatten-gemm"
    law = "Reshape(Gemm(Reshape(x, [-1, K]), W, b), x's leading dims + [N]) -> Add(MatMul(x, W), b)"
    ops = ("Gemm",)

    def match(self, gemm: Node) -> Match | Reject | None:
        found = UnflattenGemm.plan(gemm)
        if isinstance(found, str):
            return self.reject(gemm, found)
        if found is None:
            return None
        flatten, restore, x, weight, bias = found
        return Match(gemm, nodes=(flatten, gemm, restore), values={"x": x, "weight": weight, "bias": bias})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        flatten, gemm, restore = match.nodes
        UnflattenGemm.unflatten(builder, gemm, flatten, restore, match["x"], match["weight"], match.values["bias"])
        builder.ctx.stats["unflattened"] += 1


@register_pass
class UnflattenGemm(RulePass):
    name = "unflatten-gemm"
    description = "Reshape(Gemm(Reshape(x, [-1, K])), x's leading dims + [N]) -> Add(MatMul(x, W), b)"
    numerics = Numerics.TOLERANCE
    statistics = ("unflattened",)
    rules = (UnflattenRule(),)

    @staticmethod
    def plan(gemm: Node) -> tuple[Node, Node, Value, Value, Value | None] | str | None:
        """(flatten Reshape, restore Reshape, x, weight, bias), None when this Gemm is an ordinary
        2-D one (no remark), or why it is flattened but cannot be rewritten."""
        flatten = producer(gemm.inputs[0], "Reshape")
        out = gemm.outputs[0]
        restore = sole_reader(out, "Reshape")
        if flatten is None or restore is None:
            return None
        x = flatten.inputs[0]
        dims = dims_of(x)
        if x is None or dims is None or len(dims) < 3 or not isinstance(dims[-1], int):
            return None
        k = dims[-1]
        if const_ints(input_at(flatten, 1)) != [-1, k]:
            return None
        weight, bias = gemm.inputs[1], input_at(gemm, 2)
        w_dims = dims_of(weight)
        if weight is None or w_dims is None or len(w_dims) != 2:
            return ("its weight's shape is unknown")
        trans_b = gemm.attr("transB", 0)
        n = w_dims[0] if trans_b else w_dims[1]
        if not isinstance(n, int):
            return ("its output width is not static")
        target = restore.inputs[1]
        if target is None or not _restores_leading_dims(target, x, n):
            return (f"{label(restore)} does not restore the flattened input's leading dims")
        if gemm.attr("transA", 0):
            return ("transA=1 transposes the flattened rows")
        if (trans_b or gemm.attr("alpha", 1.0) != 1.0) and const_array(weight) is None:
            return ("transB/alpha on a weight that is not constant")
        if bias is not None:
            b_dims = dims_of(bias)
            if b_dims is None or len(b_dims) > 2 or (len(b_dims) == 2 and b_dims[0] != 1):
                return ("its bias is not a row vector ([N], [1, N] or a scalar)")
            if gemm.attr("beta", 1.0) != 1.0 and const_array(bias) is None:
                return ("beta on a bias that is not constant")
        return flatten, restore, x, weight, bias

    @staticmethod
    def unflatten(builder: IRBuilder, gemm: Node, flatten: Node, restore: Node, x: Value, weight: Value,
                  bias: Value | None) -> None:
        graph = builder.graph
        leftovers = [weight, bias, input_at(flatten, 1), input_at(restore, 1)]
        alpha, beta = float(gemm.attr("alpha", 1.0)), float(gemm.attr("beta", 1.0))
        w = const_array(weight)
        if w is not None and (gemm.attr("transB", 0) or alpha != 1.0):
            folded = w.T if gemm.attr("transB", 0) else w
            weight = graph.make_constant(np.ascontiguousarray(folded * np.asarray(alpha, folded.dtype)), weight.name)
        b = const_array(bias)
        if bias is not None and b is not None and beta != 1.0:
            bias = graph.make_constant(b * np.asarray(beta, b.dtype), bias.name)
        old = restore.outputs[0]
        assert old is not None
        x_dims = dims_of(x)
        w_dims = dims_of(weight)
        assert x_dims is not None and w_dims is not None
        shape: tuple[Dim, ...] = (*x_dims[:-1], w_dims[1])
        dtype = dtype_of(old) or dtype_of(x)
        assert dtype is not None
        product_name = graph.unique_name(f"{gemm.name or 'gemm'}_matmul") if bias is not None else old.name
        product = Value(product_name, TensorType(dtype, shape))
        matmul = Node("MatMul", [x, weight], [product], name=f"{gemm.name}/MatMul" if gemm.name else "")
        nodes = [matmul]
        result = product
        if bias is not None:
            result = Value(old.name, TensorType(dtype, shape))
            nodes.append(Node("Add", [product, bias], [result], name=f"{gemm.name}/Add" if gemm.name else ""))
        for node in nodes:
            builder.insert(node, replaced=[flatten, gemm, restore], before=restore)
        old.replace_all_uses_with(result, replace_graph_outputs=True)
        graph.remove(restore)
        graph.remove(gemm)
        if not any(v is not None and (v.uses or v.is_graph_output) for v in flatten.outputs):
            graph.remove(flatten)
        drop_dead_constants(leftovers)  # replaced weights now, not at the next dce (see _graph_edits)
