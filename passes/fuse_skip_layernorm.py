"""Fuse a residual Add and the LayerNormalization after it into onnxruntime's SkipLayerNormalization.

    LayerNormalization(Add(a, b), gamma, beta)                 ->  SkipLayerNormalization(a, b, gamma, beta)
    LayerNormalization(Add(Add(a, b), bias), gamma, beta)      ->  SkipLayerNormalization(a, b, gamma, beta, bias)
    LayerNormalization(Add(Add(m, bias), b), gamma, beta)      ->  SkipLayerNormalization(m, b, gamma, beta, bias)

(the last is BERT's `dense(x) + residual` with the dense layer's bias Add still separate; bias
is a 1-D constant of the hidden size). The contract, from onnxruntime's contrib schema
(com.microsoft, version 1): inputs `input`, `skip`, `gamma`, optional `beta`, optional `bias`
(gamma/beta/bias 1-D of the hidden size); outputs `output`, optional `mean` and `inv_std_var`
(training only, omitted here), optional `input_skip_bias_sum` = input + skip + bias; attribute
`epsilon` (its default, 1e-12, is not LayerNormalization's 1e-5, so it is always written). When
the sum is also read elsewhere (a pre-LN transformer's residual stream, GPT-2), that fourth output
replaces it; the other intermediate Adds must have no other readers.

Where it applies: LayerNormalization over the last axis only (axis -1), stash_type 1, Mean and
InvStdDev unused, 1-D gamma/beta; input and skip of one rank, 2 or 3 (the kernel refuses others).
Their shapes must agree: onnxruntime's kernel checks the last two dims at run time and refuses a
mismatch, but given a 3-D input of batch 1 and a skip of batch B it silently returns a result of
the input's shape. So the batch dims must be provably equal (a broadcasting Add, an embedding
plus a [1, S, H] position table, is refused) and the last two must not be provably different
(the same int or symbol, or one of them unknown; a static 1 against anything else is a
broadcast and refused). ONNX shape inference loses symbolic dims at computed Reshapes and
broadcasts (`unk__N`), so the dims are first re-derived from how each value is computed
(`_Dims`: elementwise broadcast, MatMul, Gemm, Transpose, Reshape from constants or from
Shape/Gather dims, Gather, Slice, Split, Unsqueeze/Squeeze): that proves BERT's and GPT-2's
residual operands share the batch dim. Element types: float32 and float16 (the CPU kernels).

Every LayerNormalization is a candidate; when one does not fuse, a remark `SkipLayerNorm at
'name': not fused, <why>` says why. The pass is onnxruntime-only and imports com.microsoft
(version 1) into the model. Only the `onnxruntime-cuda` target appends it at -O3: onnxruntime
1.31's CPU kernel is 1.4-2.7x slower than the Add+Add+LayerNormalization it replaces
(benchmarks/bench_skip_layernorm.py).
`tolerance`: the fused kernel adds and normalizes in one pass, in its own order.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import Dim
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import (
    CONTRIB_DTYPES,
    MS_DOMAIN,
    STANDARD,
    const_array,
    dims_of,
    dtype_of,
    ensure_ms_opset,
    fused_name,
    is_op,
    other_input,
    replace_pattern,
    sole_reader,
    where,
)

Dims = tuple[Dim, ...]

_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Where", "And", "Or", "Xor", "Equal", "Less", "Greater",
              "LessOrEqual", "GreaterOrEqual", "Max", "Min", "Sum", "Mean", "Mod", "PRelu", "BiasGelu"}
_SAME_AS_INPUT = {"Cast", "CastLike", "Erf", "Tanh", "Sqrt", "Relu", "Sigmoid", "Softmax", "LogSoftmax", "Neg",
                  "Reciprocal", "Identity", "Abs", "Exp", "Log", "Gelu", "FastGelu", "Dropout", "LayerNormalization",
                  "SkipLayerNormalization", "Not", "Clip", "LeakyRelu", "Elu", "HardSigmoid", "IsNaN", "Sign",
                  "Floor", "Ceil", "Round", "Softplus", "Softsign", "HardSwish", "Mish", "Sin", "Cos"}


def _ints(value: Value | None) -> list[int] | None:
    array = const_array(value)
    if array is None or array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]


def _broadcast(shapes: list[Dims]) -> Dims:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    result: list[Dim] = []
    for column in zip(*padded, strict=True):
        known = [d for d in column if d != 1]
        if not known:
            result.append(1)
        elif all(d is not None and d == known[0] for d in known):
            result.append(known[0])
        else:
            result.append(None)
    return tuple(result)


class _Dims:
    """Dims of values, re-derived from how they are computed where ONNX inference gave up.

    Every dim is a fact: the declared one (the same `unk__N` symbol is the same unknown), or one
    derived from the operands' dims (None where neither knows). Values are visited in graph
    order once; values made later (fused nodes) are registered with `note`."""

    def __init__(self, graph: Graph) -> None:
        self.known: dict[int, Dims | None] = {}
        for node in graph:
            try:
                derived = self._derive(node)
            except (IndexError, TypeError, ValueError, ZeroDivisionError):  # a malformed node: no facts
                derived = []
            for i, out in enumerate(node.outputs):
                if out is not None:
                    self.known[id(out)] = _merge(derived[i] if i < len(derived) else None, dims_of(out))

    def of(self, value: Value | None) -> Dims | None:
        if value is None:
            return None
        if id(value) in self.known:
            return self.known[id(value)]
        const = const_array(value)
        return tuple(const.shape) if const is not None else dims_of(value)

    def note(self, value: Value | None, dims: Dims | None) -> None:
        if value is not None:
            self.known[id(value)] = dims

    def _derive(self, node: Node) -> list[Dims | None]:
        op, ins = node.op_type, [self.of(v) for v in node.inputs]
        if node.domain not in (*STANDARD, MS_DOMAIN) or not ins:
            return []
        if op in _BROADCAST:
            present = [s for s in ins if s is not None]
            return [_broadcast(present)] if len(present) == len([v for v in node.inputs if v is not None]) else []
        x = ins[0]
        if x is None:
            return []
        if op in _SAME_AS_INPUT:  # the first output (SkipLayerNormalization's sum too; not Mean/InvStdDev)
            return [x, None, None, x] if op == "SkipLayerNormalization" else [x]
        if node.domain == MS_DOMAIN and op in ("Attention", "MultiHeadAttention", "EmbedLayerNormalization"):
            # [batch, sequence] of the query (input ids), the hidden size its declared output has
            declared = dims_of(node.outputs[0]) if node.outputs and node.outputs[0] is not None else None
            hidden = declared[-1] if declared else None
            return [(x[0], x[1], hidden)] if len(x) >= 2 else []
        if op == "MatMul" and ins[1] is not None and len(x) >= 2 and len(ins[1]) >= 2:
            w = ins[1]
            return [(*_broadcast([x[:-2], w[:-2]]), x[-2], w[-1])]
        if op == "Gemm" and ins[1] is not None and len(x) == 2 and len(ins[1]) == 2:
            w = ins[1]
            return [(x[1] if node.attr("transA", 0) else x[0], w[0] if node.attr("transB", 0) else w[1])]
        if op == "Transpose":
            perm = node.attr("perm") or list(range(len(x)))[::-1]
            return [tuple(x[p] for p in perm)]
        if op == "Reshape":
            return [self._reshape(node, x)]
        if op == "Gather":
            axis = int(node.attr("axis", 0)) % len(x)
            indices = ins[1]
            return [] if indices is None else [(*x[:axis], *indices, *x[axis + 1:])]
        if op in ("Unsqueeze", "Squeeze"):
            axes = _ints(node.inputs[1]) if len(node.inputs) > 1 else node.attr("axes")
            if axes is None:
                return []
            if op == "Squeeze":
                drop = {a % len(x) for a in axes}
                return [tuple(d for i, d in enumerate(x) if i not in drop)]
            rank = len(x) + len(axes)
            spots = {a % rank for a in axes}
            rest = iter(x)
            return [tuple(1 if i in spots else next(rest) for i in range(rank))]
        if op == "Slice":
            return [self._slice(node, x)]
        if op == "Split":
            return self._split(node, x)
        return []

    def _reshape(self, node: Node, x: Dims) -> Dims | None:
        """Reshape to a constant target or to a Concat of constants and dims of other values."""
        target = node.inputs[1] if len(node.inputs) > 1 else None
        entries: list[tuple[Dim, bool]] = []  # (value, from a constant: 0 and -1 are special)
        ints = _ints(target)
        if ints is not None:
            entries = [(v, True) for v in ints]
        else:
            concat = target.producer if target is not None else None
            if not is_op(concat, "Concat") or concat is None:
                return None
            for part in concat.inputs:
                piece = _ints(part)
                if piece is not None:
                    entries.extend((v, True) for v in piece)
                    continue
                source = self._dim_of_part(part)
                if source is None:
                    return None
                entries.append((source, False))
        dims: list[Dim] = []
        for i, (entry, literal) in enumerate(entries):
            if literal and entry == 0 and not node.attr("allowzero", 0):
                dims.append(x[i] if i < len(x) else None)
            elif literal and isinstance(entry, int) and entry < 0:
                dims.append(None)
            else:
                dims.append(entry)
        return tuple(dims)

    def _dim_of_part(self, part: Value | None) -> Dim | None:
        """dim j of y when `part` is Unsqueeze(Gather(Shape(y), j), [0]) (the exporter's x.size(j))."""
        unsqueeze = part.producer if part is not None else None
        if not is_op(unsqueeze, "Unsqueeze") or unsqueeze is None:
            return None
        gather = unsqueeze.inputs[0].producer if unsqueeze.inputs[0] is not None else None
        if not is_op(gather, "Gather") or gather is None or gather.attr("axis", 0) != 0:
            return None
        index = _ints(gather.inputs[1])
        shape = gather.inputs[0].producer if gather.inputs[0] is not None else None
        if index is None or len(index) != 1 or not is_op(shape, "Shape") or shape is None or shape.attributes:
            return None
        dims = self.of(shape.inputs[0])
        if dims is None or not -len(dims) <= index[0] < len(dims):
            return None
        return dims[index[0]]

    @staticmethod
    def _slice(node: Node, x: Dims) -> Dims:
        starts, ends = _ints(node.inputs[1]), _ints(node.inputs[2])
        axes = _ints(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else None
        steps = _ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else None
        if axes is None:
            count = len(starts) if starts is not None else len(ends) if ends is not None else len(x)
            axes = list(range(count))
        dims = list(x)
        for k, axis in enumerate(axes):
            axis %= len(x)
            size = x[axis]
            if starts is None or ends is None or not isinstance(size, int):
                dims[axis] = None
                continue
            step = steps[k] if steps is not None else 1
            dims[axis] = len(range(*slice(starts[k], ends[k], step).indices(size)))
        return tuple(dims)

    @staticmethod
    def _split(node: Node, x: Dims) -> list[Dims | None]:
        axis = int(node.attr("axis", 0)) % len(x)
        sizes = _ints(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else node.attr("split")
        if sizes is None or len(sizes) != len(node.outputs):
            return []
        return [(*x[:axis], int(s), *x[axis + 1:]) for s in sizes]


def _merge(derived: Dims | None, declared: Dims | None) -> Dims | None:
    if derived is None or (declared is not None and len(declared) != len(derived)):
        return declared
    if declared is None:
        return derived
    return tuple(d if d is not None else e for d, e in zip(derived, declared, strict=True))


def _shape_problem(a: Dims, b: Dims) -> str | None:
    """Why SkipLayerNormalization(a, b) might not compute Add(a, b): onnxruntime's kernel refuses
    (at run time) last two dims that differ, but with a 3-D input of batch 1 and a skip of batch B
    it silently returns the input's shape. So the batch dim must be provably equal; the others
    must not be provably different (the same int or symbol, or not both known)."""
    shown = f"{_show(a)} + {_show(b)}"
    if len(a) != len(b):
        return f"the Add's operands have different ranks ({shown})"
    if len(a) == 3 and (a[0] is None or a[0] != b[0]):
        return (f"the Add's operands are not provably of one batch size ({shown}): with a broadcast batch, "
                "SkipLayerNormalization would silently return the input's shape")
    for x, y in zip(a[-2:], b[-2:], strict=True):
        if x != y and ((isinstance(x, int) and isinstance(y, int)) or x == 1 or y == 1):
            return f"the Add broadcasts ({shown}), which SkipLayerNormalization does not"
    return None


@dataclass
class _Skip:
    input: Value
    skip: Value
    bias: Value | None
    nodes: list[Node]  # the Adds, then the LayerNormalization
    total: Value  # input + skip (+ bias), LayerNormalization's input
    keep_total: bool  # the sum is read elsewhere: SkipLayerNormalization's fourth output stands for it


def _bias_of(node: Node, value: Value, hidden: Dim) -> Value | None:
    """The other operand of Add `node` when it is a 1-D constant of the hidden size."""
    other = other_input(node, value)
    array = const_array(other)
    if other is None or other is value or array is None or array.ndim != 1 or array.shape[0] != hidden:
        return None
    return other


def _match(ln: Node, dims: _Dims) -> _Skip | str | None:
    x = ln.inputs[0] if ln.inputs else None
    add = x.producer if x is not None else None
    if x is None or add is None or not is_op(add, "Add"):
        return "its input is not an Add"
    gamma = ln.inputs[1] if len(ln.inputs) > 1 else None
    beta = ln.inputs[2] if len(ln.inputs) > 2 else None
    x_dims = dims.of(x)
    rank = None if x_dims is None else len(x_dims)
    axis = int(ln.attr("axis", -1))
    if rank is None or axis not in (-1, rank - 1):
        return f"it normalizes from axis {axis}, not the last axis alone" if rank is not None else \
            "its input's rank is unknown"
    if int(ln.attr("stash_type", 1)) != 1:
        return "stash_type is not 1 (float32 statistics)"
    if any(out is not None and (out.uses or out.is_graph_output) for out in ln.outputs[1:]):
        return "its Mean/InvStdDev outputs are read"
    for value, what in ((gamma, "scale"), (beta, "bias")):
        shape = dims.of(value)
        if value is not None and (shape is None or len(shape) != 1):
            return f"its {what} is not known to be 1-D (SkipLayerNormalization takes 1-D gamma/beta)"
    hidden = (dims.of(gamma) or (None,))[0]
    if not isinstance(hidden, int):
        return "the hidden size is not static"
    dtype = dtype_of(x)
    if dtype not in CONTRIB_DTYPES:
        return "the input is not float32/float16 (onnxruntime's SkipLayerNormalization kernels)"
    p, q = add.inputs[0], add.inputs[1]
    if p is None or q is None:
        return "the Add has an omitted operand"
    nodes = [add, ln]
    bias: Value | None = None
    first: Value | None = p
    second: Value | None = q
    for operand, other in ((p, q), (q, p)):  # bias after: Add(Add(a, b), bias)
        inner = other.producer
        if _bias_of(add, other, hidden) is operand and inner is not None and is_op(inner, "Add") \
                and sole_reader(other) is add:
            bias, first, second, nodes = operand, inner.inputs[0], inner.inputs[1], [inner, *nodes]
            break
    if bias is None and const_array(p) is None and const_array(q) is None:
        for operand, other in ((p, q), (q, p)):  # bias before: Add(Add(m, bias), b)
            inner = operand.producer
            if inner is None or not is_op(inner, "Add") or sole_reader(operand) is not add:
                continue
            for m in inner.inputs:
                if m is not None and _bias_of(inner, m, hidden) is not None and const_array(m) is None:
                    bias, first, second, nodes = _bias_of(inner, m, hidden), m, other, [inner, *nodes]
                    break
            if bias is not None:
                break
    if first is None or second is None or const_array(first) is not None or const_array(second) is not None:
        return "the Add adds a constant, not a skip connection"
    a_dims, b_dims = dims.of(first), dims.of(second)
    if a_dims is None or b_dims is None or len(a_dims) not in (2, 3) or len(b_dims) not in (2, 3):
        return "the Add's operands are not known to be 2-D or 3-D (the kernel's ranks)"
    why = _shape_problem(a_dims, b_dims)
    if why is not None:
        return why
    if a_dims[-1] != hidden:
        return f"the last dim {a_dims[-1]} is not the hidden size {hidden}"
    if dtype_of(first) != dtype or dtype_of(second) != dtype or (bias is not None and dtype_of(bias) != dtype):
        return "the operands are not all of one element type"
    keep_total = x.is_graph_output or len(x.uses) > 1
    if keep_total and any(v is not None and v.producer is not None for v in (gamma, beta)):
        return "the sum is read elsewhere and gamma/beta are computed (they would be needed before the Add)"
    if ln.graph is not add.graph:
        return "the Add is in another graph"
    return _Skip(first, second, bias, nodes, x, keep_total)


def _show(dims: Dims) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


@register_pass
class FuseSkipLayerNorm(Pass):
    name = "fuse-skip-layernorm"
    description = "Fuse residual Add (+ bias) + LayerNormalization into onnxruntime's SkipLayerNormalization"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        if graph.root.model is None:
            return False
        for sub in list(graph.all_graphs()):
            dims: _Dims | None = None
            for node in sub:
                if not is_op(node, "LayerNormalization"):
                    continue
                dims = dims or _Dims(sub)
                match = _match(node, dims)
                if match is None:
                    continue
                if isinstance(match, str):
                    ctx.remark(f"SkipLayerNorm at {where(node)}: not fused, {match}")
                    continue
                rule = "skip-layernorm" + ("-bias" if match.bias is not None else "") + \
                    ("-sum" if match.keep_total else "")
                if not ctx.rewrite(rule):
                    return changed
                ensure_ms_opset(graph)
                gamma = node.inputs[1]
                beta = node.inputs[2] if len(node.inputs) > 2 else None
                inputs = [match.input, match.skip, gamma, beta] + ([match.bias] if match.bias is not None else [])
                while inputs and inputs[-1] is None:
                    inputs.pop()
                y = node.outputs[0]
                outputs = [y, None, None, match.total] if match.keep_total else [y]
                epsilon = float(node.attr("epsilon", 1e-5))
                # With the sum kept, readers of it may precede the LayerNormalization: the fused node
                # goes where the Add was (gamma/beta are then constants or graph inputs).
                fused = replace_pattern(sub, ctx, rule, match.nodes, "SkipLayerNormalization", inputs, outputs,
                                        {"epsilon": epsilon}, domain=MS_DOMAIN,
                                        name=fused_name(node, "SkipLayerNormalization"),
                                        before=match.nodes[-2] if match.keep_total else node)
                total_dims = dims.of(match.input)
                for out in fused.outputs:
                    dims.note(out, total_dims)
                ctx.stats["fused"] += 1
                changed = True
        return changed
