"""Fuse the multi-head self-attention block of BERT- and GPT-style exports into one Attention node.

What torch.onnx.export writes for one HuggingFace `BertSelfAttention` (eager attention), after
`fold-constants` and `simplify-shapes` have made the Reshape targets constants (0 = copy dim):

    q = Add(MatMul(x, Wq), bq)                      k, v likewise, from the same x [B, S, in]
    Q = Transpose(Reshape(q, [0, 0, H, d]), [0, 2, 1, 3])                          [B, H, S, d]
    K = Transpose(Reshape(k, [0, 0, H, d]), [0, 2, 3, 1])   (or [0,2,1,3] then [0,1,3,2])
    V = Transpose(Reshape(v, [0, 0, H, dv]), [0, 2, 1, 3])
    s = Div(MatMul(Q, K), sqrt(d))                  or Mul(MatMul(Q, K), 1/sqrt(d))
    p = Softmax(Add(s, mask), axis=-1)              the mask Add is optional
    y = Reshape(Transpose(MatMul(p, V), [0, 2, 1, 3]), [0, 0, H*dv])                 [B, S, H*dv]

GPT-2 (decoder) blocks differ in two places, both handled:

    q, k, v = Split(Add(MatMul(x, W), b), [H*d] * 3, axis=2)    one packed projection (c_attn)
    s = Where(keep, scaled Q·Kᵀ, fill)                           the causal select, before the mask Add

Q, K and V are then column slices of the packed W and b. `keep` must be the lower triangle
(key j <= query i): GPT-2 slices a constant tril buffer with the scores' own dims,
`bias[:, :, ns - nd:ns, :ns]`; whatever computes it, the condition is evaluated (onnx reference
evaluator) at every sequence length from 1 to 16 and at 32 ... 1024 until the model's buffer
runs out, and must read only constants and the shapes of the block's tensors. The select
becomes `unidirectional=1` (contrib) or `is_causal=1` (onnx); `fill` must be <= -10000. A causal
block whose Q/K/V are not one input's constant projections is left alone (MultiHeadAttention is
not used for it). With a padding mask as well, contrib `mask_filter_value` is the padding
mask's c; onnxruntime then matches the decomposed graph even on queries whose every allowed key
is padded when c = -10000, not when c = finfo.min.

The mask is HF's extended attention mask, `(1 - Cast(Unsqueeze(Unsqueeze(m, 1), 2))) * c` of
the 2-D 0/1 `attention_mask` m, with c = finfo(float32).min (BERT) or -10000 (older exports).

Option `form`:

- `contrib` (onnxruntime): `com.microsoft::Attention(x, [Wq|Wk|Wv], [bq|bk|bv], Cast(m, int32))
  {num_heads=H, mask_filter_value=c}`. onnxruntime turns the raw [B, S] mask into the additive
  bias itself (0 where m > 0, `mask_filter_value` elsewhere) and adds it to scale * Q·Kᵀ, which is
  what the decomposed graph computes when m holds 0/1 (HF's contract for attention_mask; a value
  such as 2 would give (1 - 2) * c there and "keep" here). Setting `mask_filter_value` to the
  model's c keeps fully masked rows (all of a sequence padded) equal to the decomposed graph's:
  uniform weights with finfo.min, near-softmax with -10000. The extended-mask arithmetic is left
  unused (shared by every layer), as are the Reshape targets and their Shape→Gather→Concat
  leftovers and the scale constant: `dce` removes them. The replaced Q/K/V weights and biases are
  dropped by the pass itself once nothing reads them (a large unread initializer breaks the numeric
  check, which hands weights to onnxruntime from memory). The `com.microsoft` opset
  (version 1) is imported. Attention needs Q, K and V projected from the same x by constant
  weights, read by nothing else; any other block (cross-attention: K and V from an encoder's output,
  possibly of another length; non-constant weights; a projection also read elsewhere) becomes,
  unless `multihead=false`,
  `com.microsoft::MultiHeadAttention(q, k, v, bias, Cast(m, int32)) {num_heads, mask_filter_value}`
  on the 3-D projections, each bias Add folded into the packed `bias` input where the block is
  the Add's only reader (rule `multihead-attention-contrib`).
- `onnx` (portable, opset >= 23): ai.onnx `Attention(q, k, v, mask) {q_num_heads=H,
  kv_num_heads=H}` on the 3-D projections, which stay as they are (so any projection, and
  cross-attention, fuse). The extended mask is passed as the float `attn_mask`; where its
  query axis is not already the sequence length it is broadcast there with
  Expand(mask, [1, 1, S, 1]): onnxruntime 1.31's kernel requires attn_mask dim -2 == q_sequence_length
  although the operator broadcasts it. Known difference: onnxruntime's opset-23 kernel returns 0
  for a fully masked row whose mask is finfo.min (it treats the lowest float as -inf), where the
  decomposed graph averages V; rows with at least one unmasked key agree.

Either form requires the scale to be 1/sqrt(head_dim) (the operators' default) and every value
inside the block to be read only by the next node of the block: a value read outside (a debug
output, a Shape left for `dce`) blocks the fusion. Each Softmax that does not match gets a remark
`Attention at Softmax '...': not fused, <why>` for `mlc debug`.

`tolerance`: the fused kernels multiply by the scale instead of dividing by sqrt(d) and
accumulate in another order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, TensorType
from mlc.numerics.evaluate import EvaluationError, SubgraphEvaluator
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._patterns import MS_DOMAIN, STANDARD, const_array, dims_of, dtype_of, label, producer

_FORMS = ("contrib", "onnx")
_FLOATS = (DType.FLOAT, DType.FLOAT16)
_MASK_DTYPES = (DType.INT64, DType.INT32, DType.INT16, DType.INT8, DType.UINT8, DType.BOOL)
_ONNX_ATTENTION_OPSET = 23


class _NoMatch(Exception):
    """Why one Softmax is not the softmax of a fusable attention block (the remark's text)."""


# ===================================================================== small helpers






def _same_rows(x: Value, out: Value) -> TensorType | None:
    """The fused output's type: [batch, sequence] of the projected input (which shape inference
    may have lost track of through the decomposed block), the hidden size of the old output."""
    x_shape, out_shape = dims_of(x), dims_of(out)
    if x_shape is None or out_shape is None or len(x_shape) != 3 or len(out_shape) != 3:
        return out.type if isinstance(out.type, TensorType) else None
    assert isinstance(out.type, TensorType)
    return TensorType(out.type.dtype, (x_shape[0], x_shape[1], out_shape[2]))






def _only_input(node: Node, index: int = 0) -> Value:
    value = node.inputs[index] if index < len(node.inputs) else None
    if value is None:
        raise _NoMatch(f"{label(node)} has no input {index}")
    return value


def _out(node: Node) -> Value:
    value = node.outputs[0] if node.outputs else None
    assert value is not None
    return value


def _axes(node: Node) -> list[int] | None:
    """Unsqueeze's axes: the attribute before opset 13, the constant second input after."""
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        array = const_array(node.inputs[1])
        return None if array is None else [int(a) for a in array.reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _fmt(x: float) -> str:
    return f"{x:.5g}"


# ===================================================================== the matched block
@dataclass
class _HeadSplit:
    """Transpose(...(Reshape(src, [b, s, H, d]))): src [B, S, H*d] split into heads."""

    src: Value
    heads: int
    head_dim: int
    nodes: list[Node]  # reshape first, then transposes


@dataclass
class _Projection:
    """Add(MatMul(x, W), b) or MatMul(x, W): the linear map a head split reads."""

    x: Value
    weight: np.ndarray
    bias: np.ndarray | None
    nodes: list[Node]
    constants: list[Value]  # the weight (and bias) values, dropped once the fusion leaves them unread


@dataclass
class _ExtendedMask:
    """(1 - Cast(Unsqueeze(m))) * filter_value of a 2-D 0/1 mask m."""

    raw: Value
    filter_value: float


@dataclass
class _MhaInputs:
    """MultiHeadAttention's query, key, value and packed bias: a bias Add in front of a head split
    is folded into the op's bias input when the block is its only reader."""

    qkv: list[Value]
    bias: np.ndarray | None
    adds: list[Node]
    constants: list[Value]


@dataclass
class _Causal:
    """Where(keep, scores, fill) with keep[i, j] = (j <= i) for every sequence length tried: the
    causal (unidirectional) mask of a decoder; `owned` are the nodes computing `keep` from the
    block's own shapes, removed with the block."""

    where: Node
    fill: float
    owned: list[Node]


@dataclass
class _Block:
    softmax: Node
    q: _HeadSplit
    k: _HeadSplit
    v: _HeadSplit
    inner: list[Node]  # Q·Kᵀ MatMul, scale, mask Add, Softmax, P·V MatMul, Transpose, Reshape
    mask: Value | None  # the additive mask operand of the Add (None: no mask)
    out: Value
    projections: list[_Projection] = field(default_factory=list)  # com.microsoft::Attention: Q, K, V
    mha: _MhaInputs | None = None  # com.microsoft::MultiHeadAttention
    causal: _Causal | None = None

    @property
    def nodes(self) -> list[Node]:
        result = [*self.inner]
        if self.causal is not None:
            result += [self.causal.where, *self.causal.owned]
        if self.mha is not None:
            result += self.mha.adds
        for split in (self.q, self.k, self.v):
            result += split.nodes
        for projection in self.projections:
            result += projection.nodes
        return list(dict.fromkeys(result))  # Q, K and V may share a Reshape or a projection


def _reshape_copies(entry: int, dim: Dim) -> bool:
    """Whether a Reshape target entry keeps input dim `dim` at the same position."""
    return entry == 0 or (isinstance(dim, int) and entry == dim)


def _head_split(value: Value, want_perm: tuple[int, ...], what: str) -> _HeadSplit:
    """Match `value` = Transpose chain (composed perm `want_perm`) of Reshape(src, [B, S, H, d])."""
    transposes: list[Node] = []
    perm: tuple[int, ...] = (0, 1, 2, 3)
    current = value
    while (node := producer(current, "Transpose")) is not None:
        p = node.attr("perm")
        if p is None or len(p) != 4:
            raise _NoMatch(f"{what}: {label(node)} is not a 4-D transpose with a perm")
        perm = tuple(int(p[i]) for i in perm)  # y2[i] = y1[p2[i]] = x[p1[p2[i]]]
        transposes.append(node)
        current = _only_input(node)
    if not transposes:
        raise _NoMatch(f"{what} is not a Transpose of the head split")
    if perm != want_perm:
        raise _NoMatch(f"{what} is transposed by {list(perm)}, not {list(want_perm)}")
    reshape = producer(current, "Reshape")
    if reshape is None:
        raise _NoMatch(f"{what} is not split into heads by a Reshape")
    src = _only_input(reshape)
    target = const_array(reshape.inputs[1] if len(reshape.inputs) > 1 else None)
    if target is None:
        raise _NoMatch(f"the head-split target of {what} ({label(reshape)}) is not a constant "
                       "(run simplify-shapes first)")
    entries = [int(t) for t in target.reshape(-1)]
    shape = dims_of(src)
    if shape is None or len(shape) != 3 or not isinstance(shape[2], int):
        raise _NoMatch(f"the input of {label(reshape)} is not known to be 3-D with a static last dim")
    if len(entries) != 4 or (0 in entries and reshape.attr("allowzero", 0)):
        raise _NoMatch(f"{label(reshape)} target {entries} is not [batch, sequence, heads, head_dim]")
    heads, head_dim = entries[2], entries[3]
    leading_ok = (entries[:2].count(-1) <= 1 and all(e == -1 or _reshape_copies(e, d)
                                                      for e, d in zip(entries[:2], shape[:2], strict=True)))
    if heads <= 0 or head_dim <= 0 or heads * head_dim != shape[2] or not leading_ok:
        raise _NoMatch(f"{label(reshape)} target {entries} does not split {list(shape)} into heads")
    return _HeadSplit(src, heads, head_dim, [reshape, *reversed(transposes)])


def _scores(value: Value) -> tuple[Node, Node | None, float]:
    """(Q·Kᵀ MatMul, scale node, scale) for value = Div(mm, c) | Mul(mm, c) | Mul(c, mm) | mm."""
    node = producer(value, "Div", "Mul", "MatMul")
    if node is None:
        raise _NoMatch("not scaled scores")
    if node.op_type == "MatMul":
        return node, None, 1.0
    for position in ((0, 1) if node.op_type == "Mul" else (0,)):
        mm = producer(node.inputs[position], "MatMul")
        c = const_array(node.inputs[1 - position])
        if mm is None:
            continue
        if c is None or c.size != 1 or c.dtype.kind != "f":
            raise _NoMatch(f"the scores are scaled by {label(node)} with a non-constant or non-scalar factor")
        factor = float(c.reshape(-1)[0])
        if node.op_type == "Div":
            if factor == 0.0:
                raise _NoMatch(f"{label(node)} divides by zero")
            factor = 1.0 / factor
        return mm, node, factor
    raise _NoMatch(f"{label(node)} does not scale a MatMul")


def _scores_or_causal(value: Value) -> tuple[tuple[Node, Node | None, float], tuple[Node, int] | None]:
    """The scaled Q·Kᵀ that `value` is, directly or through a select Where(c, scores, fill) /
    Where(c, fill, scores); the Where and the position of the scores in it (None: no select)."""
    where = producer(value, "Where")
    if where is None:
        return _scores(value), None
    for position in (1, 2):
        try:
            scored = _scores(_only_input(where, position))
        except _NoMatch:
            continue
        return scored, (where, position)
    raise _NoMatch(f"{label(where)} selects between values neither of which is the scaled Q·Kᵀ")


def _match_block(softmax: Node) -> _Block:
    """The attention block whose Softmax is `softmax` (raises _NoMatch with the reason)."""
    axis = softmax.attr("axis", -1 if (softmax.graph and (softmax.graph.opset_version("") or 13) >= 13) else 1)
    if axis not in (-1, 3):
        raise _NoMatch(f"Softmax axis is {axis}, not the last")
    probs = _out(softmax)
    logits = _only_input(softmax)
    inner: list[Node] = [softmax]
    mask: Value | None = None
    add = producer(logits, "Add")
    scored: tuple[Node, Node | None, float] | None = None
    select: tuple[Node, int] | None = None
    if add is not None:
        reasons = []
        for position in (0, 1):
            try:
                scored, select = _scores_or_causal(_only_input(add, position))
            except _NoMatch as why:
                reasons.append(str(why))
                continue
            mask = add.inputs[1 - position]
            break
        if scored is None:
            raise _NoMatch(f"neither input of {label(add)} is the scaled Q·Kᵀ ({'; '.join(reasons)})")
        inner.append(add)
    else:
        try:
            scored, select = _scores_or_causal(logits)
        except _NoMatch as why:
            source = logits.producer
            kind = f"{label(source)}" if source is not None else "a graph input"
            detail = f" ({why})" if source is not None and source.op_type == "Where" else ""
            raise _NoMatch(f"its input comes from {kind}, not from Add(scaled Q·Kᵀ, mask) or scaled "
                           f"Q·Kᵀ{detail}") from None
    qk, scale_node, scale = scored
    inner.append(qk)
    if scale_node is not None:
        inner.append(scale_node)
    q = _head_split(_only_input(qk, 0), (0, 2, 1, 3), "Q")
    k = _head_split(_only_input(qk, 1), (0, 2, 3, 1), "Kᵀ")
    if (q.heads, q.head_dim) != (k.heads, k.head_dim):
        raise _NoMatch(f"Q has {q.heads} heads of {q.head_dim}, K {k.heads} heads of {k.head_dim}")
    expected = 1.0 / math.sqrt(q.head_dim)
    if not math.isclose(scale, expected, rel_tol=1e-5):
        raise _NoMatch(f"scale {_fmt(scale)} is not 1/sqrt(head_dim)={_fmt(expected)}")

    readers = [n for n in probs.consumers if n.op_type == "MatMul" and n.domain in STANDARD]
    if not readers or readers[0].inputs[0] is not probs:
        raise _NoMatch("the probabilities are not multiplied by V")
    pv = readers[0]
    v = _head_split(_only_input(pv, 1), (0, 2, 1, 3), "V")
    if v.heads != q.heads:
        raise _NoMatch(f"V has {v.heads} heads, Q {q.heads}")
    inner.append(pv)
    back = [n for n in _out(pv).consumers if n.op_type == "Transpose" and n.domain in STANDARD]
    if not back or list(back[0].attr("perm") or []) != [0, 2, 1, 3]:
        raise _NoMatch("P·V is not transposed back by [0, 2, 1, 3]")
    inner.append(back[0])
    merges = [n for n in _out(back[0]).consumers if n.op_type == "Reshape" and n.domain in STANDARD]
    if not merges:
        raise _NoMatch("the heads are not merged back by a Reshape")
    merge = merges[0]
    target = const_array(merge.inputs[1] if len(merge.inputs) > 1 else None)
    width = v.heads * v.head_dim
    entries = [] if target is None else [int(t) for t in target.reshape(-1)]
    if target is None:
        raise _NoMatch(f"the head-merge target of {label(merge)} is not a constant (run simplify-shapes first)")
    q_shape = dims_of(q.src)  # the merged tensor is [B, S_q, H, dv]: its leading dims are Q's
    lead: tuple[Dim, ...] = q_shape[:2] if q_shape is not None else (None, None)
    if (len(entries) != 3 or entries.count(-1) > 1 or (0 in entries and merge.attr("allowzero", 0))
            or entries[2] not in (width, -1)
            or not all(e == -1 or _reshape_copies(e, d) for e, d in zip(entries[:2], lead, strict=True))):
        raise _NoMatch(f"{label(merge)} target {entries} does not merge the heads into [batch, sequence, {width}]")
    inner.append(merge)
    block = _Block(softmax, q, k, v, inner, mask, _out(merge))
    if select is not None:
        block.causal = _causal(block, *select, qk)
    return block


_CAUSAL_FILL_MAX = -1e4  # Attention's own causal fill is at least this strong
_CAUSAL_CONE_LIMIT = 64
_CAUSAL_LENGTHS = (*range(1, 17), 32, 64, 128, 256, 512, 1024)


def _causal(block: _Block, where: Node, position: int, qk: Node) -> _Causal:
    """Check that Where keeps exactly the scores of keys j <= query i, by evaluating its condition.

    The condition may be computed from constants (HF GPT-2 slices a tril buffer) and from the
    shapes of the block's own tensors (`bias[:, :, ns - nd:ns, :ns]` with nd, ns read from the
    scores), never from input values. It is evaluated with onnx's reference evaluator for every
    sequence length S from 1 to 16, then 32, 64, ... 1024, until it fails (a buffer of
    max_positions rows stops there: the decomposed graph cannot run longer sequences, the fused op
    can); every length it computes must give the lower triangle, and S = 1 must compute."""
    fill = const_array(where.inputs[3 - position])
    if fill is None or fill.size != 1 or fill.dtype.kind != "f":
        raise _NoMatch(f"{label(where)} does not fill the masked scores with a constant")
    fill_value = float(fill.reshape(-1)[0])
    if fill_value > _CAUSAL_FILL_MAX:
        raise _NoMatch(f"{label(where)} fills masked scores with {_fmt(fill_value)}, not a large negative value "
                       f"(<= {_fmt(_CAUSAL_FILL_MAX)})")
    condition = _only_input(where, 0)
    graph = where.graph
    assert graph is not None
    heads, head_dim, dv = block.q.heads, block.q.head_dim, block.v.head_dim
    scores = {id(_out(qk)), id(_only_input(where, position))}  # Q·Kᵀ, and scaled if there is a scale node

    def dims_at(value: Value, batch: int, length: int) -> tuple[int, ...] | None:
        if id(value) in scores:
            return (batch, heads, length, length)
        if value is qk.inputs[0]:
            return (batch, heads, length, head_dim)
        if value is qk.inputs[1]:
            return (batch, heads, head_dim, length)
        if value in (block.q.src, block.k.src):
            return (batch, length, heads * head_dim)
        if value is block.v.src:
            return (batch, length, heads * dv)
        static = dims_of(value)
        if static is not None and all(isinstance(d, int) for d in static):
            return tuple(int(d) for d in static)  # type: ignore[arg-type]
        return None

    # The condition's cone: constants and Shape/Size leaves.
    cone: list[Node] = []
    leaves: list[Node] = []
    pending, seen = [condition], set()
    while pending:
        value = pending.pop()
        if id(value) in seen or value.const is not None:
            continue
        seen.add(id(value))
        node = value.producer
        if node is None:
            raise _NoMatch(f"the causal condition of {label(where)} reads %{value.name}, an input value")
        if node.domain not in STANDARD or node.subgraphs():
            raise _NoMatch(f"the causal condition of {label(where)} is computed by {label(node)}")
        cone.append(node)
        if len(cone) > _CAUSAL_CONE_LIMIT:
            raise _NoMatch(f"the causal condition of {label(where)} takes more than {_CAUSAL_CONE_LIMIT} nodes")
        if node.op_type in ("Shape", "Size"):
            leaves.append(node)
            if dims_at(_only_input(node), 1, 2) is None:
                raise _NoMatch(f"the causal condition of {label(where)} reads the shape of "
                               f"%{_only_input(node).name}, which is not one of the block's tensors")
            continue
        pending.extend(v for v in node.inputs if v is not None)
    order = {n: i for i, n in enumerate(graph)}
    cone = list(dict.fromkeys(sorted(cone, key=lambda n: order[n])))
    inner = [n for n in cone if n not in leaves]
    opsets = dict(graph.root.model.opset_imports) if graph.root.model is not None else {"": 17}
    try:
        evaluator = SubgraphEvaluator(inner, [_out(n) for n in leaves], [condition], opsets)
    except EvaluationError as why:
        raise _NoMatch(f"the causal condition of {label(where)} cannot be evaluated ({why})") from None

    def leaf_value(node: Node, batch: int, length: int) -> np.ndarray:
        dims = dims_at(_only_input(node), batch, length)
        assert dims is not None
        if node.op_type == "Size":
            return np.array(int(np.prod(dims)), np.int64)
        rank = len(dims)
        start, end = node.attr("start", 0), node.attr("end", rank)
        return np.array(dims[slice(start + rank if start < 0 else start, end + rank if end < 0 else end)], np.int64)

    # (1, 1) and a batch of 2 must compute; past that, the first failure is the model's longest sequence.
    trials = [(1, 1), (2, 3)] + [(1, length) for length in _CAUSAL_LENGTHS[1:]]
    static = dims_of(_out(qk))
    if static is not None and isinstance(static[-1], int):
        trials = [(1, static[-1])]  # a static sequence: the one length that runs
    for batch, length in trials:
        try:
            (keep,) = evaluator.run([leaf_value(n, batch, length) for n in leaves])
            if position == 2:
                keep = ~keep.astype(bool)
            full = np.broadcast_to(keep.astype(bool), (batch, heads, length, length))
        except (EvaluationError, ValueError) as why:
            if (batch, length) in trials[:2]:
                raise _NoMatch(f"the causal condition of {label(where)} fails at sequence length {length} "
                               f"({why})") from None
            break  # past the model's longest sequence
        if not np.array_equal(full, np.broadcast_to(np.tri(length, dtype=bool), full.shape)):
            raise _NoMatch(f"the condition of {label(where)} is not the causal (lower-triangular) mask at "
                           f"sequence length {length}")
    # The nodes reading the block's own tensors (and what they feed) go with the block.
    block_values = {id(v) for n in block.nodes for v in n.outputs if v is not None}
    owned: list[Node] = []
    for node in cone:
        if any(v is not None and id(v) in block_values for v in node.inputs):
            owned.append(node)
            block_values.update(id(v) for v in node.outputs if v is not None)
    return _Causal(where, fill_value, owned)


def _check_readers(block: _Block) -> None:
    """Every value the fusion removes must be read only inside the block."""
    nodes = block.nodes
    members = set(nodes)
    for node in nodes:
        for value in node.outputs:
            if value is None or value is block.out:
                continue
            if value.is_graph_output:
                raise _NoMatch(f"the output of {label(node)} is a graph output")
            outside = [n for n in value.consumers if n not in members]
            if outside:
                raise _NoMatch(f"the output of {label(node)} is also read outside the block, by {label(outside[0])}")


def _projection(split: _HeadSplit, what: str) -> _Projection:
    """The constant linear map that computes the head split's input."""
    value = split.src
    nodes: list[Node] = []
    bias: np.ndarray | None = None
    constants: list[Value] = []
    add = producer(value, "Add")
    if add is not None:
        nodes.append(add)
        for position in (0, 1):
            mm = producer(add.inputs[position], "MatMul")
            if mm is not None:
                bias = const_array(add.inputs[1 - position])
                constants.append(_only_input(add, 1 - position))
                break
        else:
            raise _NoMatch(f"{what} is not projected by MatMul + Add(bias)")
        width = split.heads * split.head_dim
        if bias is None or bias.size != width or bias.shape[-1:] != (width,):
            raise _NoMatch(f"the {what} bias of {label(add)} is not a constant vector")
    else:
        mm = producer(value, "MatMul")
        if mm is None:
            raise _NoMatch(f"{what} is not projected by a MatMul")
    nodes.append(mm)
    x, weight = _only_input(mm, 0), const_array(mm.inputs[1])
    if weight is None or weight.ndim != 2:
        raise _NoMatch(f"the {what} weight of {label(mm)} is not a constant matrix")
    constants.append(_only_input(mm, 1))
    return _Projection(x, weight, None if bias is None else bias.reshape(-1), nodes, constants)


def _split_projection(block: _Block) -> list[_Projection] | None:
    """Q, K and V as outputs 0, 1, 2 of one Split (last axis) of a single packed projection
    Add(MatMul(x, W), b) (GPT-2's c_attn): the three projections are column slices of W and b.
    None when Q, K and V are not read from one Split."""
    sources = [block.q.src, block.k.src, block.v.src]
    split = producer(sources[0], "Split")
    if split is None or [v.producer for v in sources] != [split] * 3 or list(split.outputs) != sources:
        return None
    packed = _only_input(split)
    rank = len(dims_of(packed) or ())
    if rank != 3 or split.attr("axis", 0) not in (2, -1):
        raise _NoMatch(f"{label(split)} does not split the last axis of a 3-D projection")
    sizes = const_array(split.inputs[1]) if len(split.inputs) > 1 and split.inputs[1] is not None else None
    widths = [int(w) for w in sizes.reshape(-1)] if sizes is not None else split.attr("split")
    expected = [s.heads * s.head_dim for s in (block.q, block.k, block.v)]
    if widths is None:  # equal parts (num_outputs, or no sizes at all)
        total = dims_of(packed)[-1]  # type: ignore[index]
        widths = [total // 3] * 3 if isinstance(total, int) and total % 3 == 0 else None
    if widths is None or list(widths) != expected:
        raise _NoMatch(f"{label(split)} splits into {widths}, not Q, K, V widths {expected}")
    whole = _projection(_HeadSplit(packed, 1, sum(expected), []), "the packed QKV")
    bounds = np.cumsum([0, *expected])
    return [_Projection(whole.x, whole.weight[:, bounds[i]:bounds[i + 1]],
                        None if whole.bias is None else whole.bias[bounds[i]:bounds[i + 1]],
                        [*whole.nodes, split], whole.constants) for i in range(3)]


def _extended_mask(mask: Value) -> _ExtendedMask:
    """Match mask = (1 - Cast(Unsqueeze(m, [1, 2]))) * c of a 2-D integer/bool m."""
    mul = producer(mask, "Mul")
    if mul is None:
        raise _NoMatch("the mask is not (1 - mask) * c of a 2-D attention mask (no Mul)")
    sub: Node | None = None
    c: np.ndarray | None = None
    for position in (0, 1):
        sub = producer(mul.inputs[position], "Sub")
        c = const_array(mul.inputs[1 - position])
        if sub is not None:
            break
    if sub is None or c is None or c.size != 1:
        raise _NoMatch(f"the mask is not (1 - mask) * c of a 2-D attention mask ({label(mul)})")
    one = const_array(sub.inputs[0])
    if one is None or one.size != 1 or float(one.reshape(-1)[0]) != 1.0:
        raise _NoMatch(f"the mask is not (1 - mask) * c ({label(sub)} does not subtract from 1)")
    # Walk up through Cast and Unsqueeze to the 2-D mask.
    current = _only_input(sub, 1)
    unsqueezes: list[list[int]] = []
    casts = 0
    while (node := producer(current, "Cast", "Unsqueeze")) is not None:
        if node.op_type == "Cast":
            casts += 1
        else:
            axes = _axes(node)
            if axes is None:
                raise _NoMatch(f"the mask's {label(node)} has no constant axes")
            unsqueezes.append(axes)
        current = _only_input(node)
    raw_shape = dims_of(current)
    source = "graph input" if current.is_graph_input else (
        label(current.producer) if current.producer is not None else "constant")
    if raw_shape is None or len(raw_shape) != 2 or dtype_of(current) not in _MASK_DTYPES or casts != 1:
        raise _NoMatch(f"the mask is not derived from a 2-D integer attention mask (it starts at {source} "
                       f"%{current.name})")
    dims: list[object] = ["b", "s"]
    for axes in reversed(unsqueezes):  # collected from the Sub upwards: apply from the mask downwards
        rank = len(dims) + len(axes)
        for a in sorted(a + rank if a < 0 else a for a in axes):
            dims.insert(a, 1)
    if dims != ["b", 1, 1, "s"]:
        raise _NoMatch("the mask is not unsqueezed to [batch, 1, 1, sequence]")
    return _ExtendedMask(current, float(c.reshape(-1)[0]))


def _drop_unread(constants: list[Value]) -> None:
    """Remove the replaced weights now rather than at the next `dce`: a large initializer nobody reads
    makes onnxruntime fail when the numeric check hands weights from memory (add_external_initializers)."""
    for value in constants:
        owner = value.graph
        if owner is not None and value.is_constant and not value.uses and not value.is_graph_output:
            owner.remove_initializer(value)


def _mha_inputs(block: _Block) -> _MhaInputs:
    """The 3-D query, key and value of MultiHeadAttention, with the bias Adds folded where possible."""
    split_nodes = {n for split in (block.q, block.k, block.v) for n in split.nodes}
    qkv: list[Value] = []
    biases: list[np.ndarray | None] = []
    adds: list[Node] = []
    constants: list[Value] = []
    for split in (block.q, block.k, block.v):
        width = split.heads * split.head_dim
        src, bias = split.src, None
        add = producer(src, "Add")
        if add is not None and not src.is_graph_output and all(n in split_nodes for n in src.consumers):
            for position in (0, 1):
                array = const_array(add.inputs[position])
                other = add.inputs[1 - position]
                if array is not None and array.shape[-1:] == (width,) and array.size == width \
                        and other is not None and const_array(other) is None and dims_of(other) == dims_of(src):
                    src, bias = other, array.reshape(-1)
                    adds.append(add)
                    constants.append(_only_input(add, position))
                    break
        qkv.append(src)
        biases.append(bias)
    packed = None
    if any(b is not None for b in biases):
        dtype = dtype_of(block.out)
        assert dtype is not None
        packed = np.concatenate([b if b is not None else np.zeros(s.heads * s.head_dim)
                                 for b, s in zip(biases, (block.q, block.k, block.v), strict=True)])
        packed = packed.astype(dtype.numpy)
    return _MhaInputs(qkv, packed, adds, constants)


# ===================================================================== the pass
@register_pass
class FuseAttention(Pass):
    name = "fuse-attention"
    description = "Fuse BERT-style multi-head self-attention into com.microsoft::Attention or ai.onnx Attention"
    numerics = Numerics.TOLERANCE
    options = (PassOption("form", str, "contrib",
                          "contrib: com.microsoft::Attention (onnxruntime); onnx: ai.onnx Attention (opset >= 23)"),
               PassOption("multihead", bool, True,
                          "form=contrib: fuse the blocks Attention cannot take (Q, K, V from different inputs, "
                          "weights that are not constant) into com.microsoft::MultiHeadAttention"))
    statistics = ("fused",)

    def __init__(self, **values: object) -> None:
        super().__init__(**values)
        if self.option("form") not in _FORMS:  # refused when the pipeline is built, not halfway through it
            raise BadInputError(f"pass {self.name}: form must be one of {', '.join(_FORMS)}, "
                                f"not {self.option('form')!r}")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        form = self.option("form")
        changed = False
        opset = graph.opset_version("") or 1
        casts: dict[tuple[int, int], Value] = {}  # (graph, raw mask) -> its int32 Cast, shared by the layers
        for sub in list(graph.all_graphs()):
            for node in sub:
                if node.op_type != "Softmax" or node.domain not in STANDARD:
                    continue
                try:
                    block = _match_block(node)
                    if form == "contrib":
                        extended = self._contrib_checks(block, self.option("multihead"))
                        try:
                            _check_readers(block)
                        except _NoMatch:
                            if block.mha is not None or not self.option("multihead"):
                                raise
                            # A projection read elsewhere stays: MultiHeadAttention reads its output.
                            extended = self._contrib_checks(block, True, packed=False)
                            _check_readers(block)
                        rule = "attention-contrib" if block.mha is None else "multihead-attention-contrib"
                    else:
                        extended = None
                        self._onnx_checks(block, opset)
                        _check_readers(block)
                        rule = "attention-onnx"
                except _NoMatch as why:
                    ctx.remark(f"Attention at {label(node)}: not fused, {why}")
                    continue
                if not ctx.rewrite(rule):
                    return changed
                if form == "contrib" and block.mha is not None:
                    self._emit_mha(sub, block, extended, casts, ctx, rule)
                elif form == "contrib":
                    self._emit_contrib(sub, block, extended, casts, ctx, rule)
                else:
                    self._emit_onnx(sub, block, ctx, rule)
                ctx.stats["fused"] += 1
                changed = True
        return changed

    # ----------------------------------------------------------------- com.microsoft::Attention
    @staticmethod
    def _contrib_checks(block: _Block, multihead: bool, packed: bool = True) -> _ExtendedMask | None:
        """Plan Attention (packed constant projections of one x; not with `packed=False`) or else
        MultiHeadAttention; match the mask."""
        dtype = dtype_of(block.out)
        if dtype not in _FLOATS:
            raise _NoMatch(f"element type {dtype.short_name if dtype else '?'} is not float32/float16")
        try:
            if not packed:
                raise _NoMatch("packed projections not wanted")
            block.projections = FuseAttention._packed_projections(block)
            x_shape = dims_of(block.projections[0].x)
            assert x_shape is not None
            batch, kv_sequence = x_shape[0], x_shape[1]
        except _NoMatch as why:
            if not multihead:
                raise
            if block.causal is not None:
                raise _NoMatch(f"causal attention is fused only into Attention (unidirectional), which needs Q, K "
                               f"and V projected from one input by constant weights: {why}") from None
            # MultiHeadAttention takes any 3-D query, key and value (_head_split checked the ranks).
            block.projections = []
            block.mha = _mha_inputs(block)
            q_shape, k_shape = dims_of(block.q.src), dims_of(block.k.src)
            assert q_shape is not None and k_shape is not None
            batch, kv_sequence = q_shape[0], k_shape[1]
        if block.mask is None:
            return None
        extended = _extended_mask(block.mask)
        raw_shape = dims_of(extended.raw)
        assert raw_shape is not None
        for axis, dim, what in ((0, batch, "batch"), (1, kv_sequence, "sequence")):
            if raw_shape[axis] == 1 and dim != 1:
                raise _NoMatch(f"the mask broadcasts over the {what} (dim {axis} is 1): the op's mask needs "
                               "[batch, sequence]")
        return extended

    @staticmethod
    def _packed_projections(block: _Block) -> list[_Projection]:
        split = _split_projection(block)
        projections = split if split is not None else [
            _projection(s, w) for s, w in ((block.q, "Q"), (block.k, "K"), (block.v, "V"))]
        for projection, what in zip(projections[1:], "KV", strict=True):
            if projection.x is not projections[0].x:
                raise _NoMatch(f"Q and {what} are not projected from the same input")
        x_shape = dims_of(projections[0].x)
        if x_shape is None or len(x_shape) != 3:
            raise _NoMatch("the projected input is not known to be 3-D [batch, sequence, hidden]")
        if len({p.weight.shape[0] for p in projections}) != 1 or len({p.weight.dtype for p in projections}) != 1:
            raise _NoMatch("the Q, K and V weights differ in input size or type")
        return projections

    @staticmethod
    def _emit_mha(graph: Graph, block: _Block, extended: _ExtendedMask | None,
                  casts: dict[tuple[int, int], Value], ctx: PassContext, rule: str) -> None:
        mha = block.mha
        assert mha is not None
        model = graph.root.model
        if model is not None:
            model.opset_imports.setdefault(MS_DOMAIN, 1)
        inputs: list[Value | None] = [*mha.qkv, None if mha.bias is None else graph.make_constant(mha.bias, "qkv_bias")]
        attributes: dict[str, object] = {"num_heads": block.q.heads}
        if extended is not None:
            inputs.append(FuseAttention._int32_mask(graph, extended.raw, casts, ctx, rule))
            attributes["mask_filter_value"] = extended.filter_value
        while inputs[-1] is None:
            inputs.pop()
        name = block.softmax.name.rsplit("/", 1)[0] + "/MultiHeadAttention" if block.softmax.name else ""
        node = Node("MultiHeadAttention", inputs, [Value(block.out.name, block.out.type)], attributes, domain=MS_DOMAIN,
                    name=name)
        FuseAttention._replace(graph, block, node, block.inner[-1], ctx, rule)
        _drop_unread(mha.constants)

    @staticmethod
    def _emit_contrib(graph: Graph, block: _Block, extended: _ExtendedMask | None,
                      casts: dict[tuple[int, int], Value], ctx: PassContext, rule: str) -> None:
        q, k, v = block.projections
        model = graph.root.model
        if model is not None:
            model.opset_imports.setdefault(MS_DOMAIN, 1)
        weights = np.concatenate([q.weight, k.weight, v.weight], axis=1)
        biases = [p.bias if p.bias is not None else np.zeros(p.weight.shape[1], p.weight.dtype) for p in (q, k, v)]
        inputs: list[Value | None] = [q.x, graph.make_constant(weights, "qkv_weight")]
        if any(p.bias is not None for p in (q, k, v)):
            inputs.append(graph.make_constant(np.concatenate(biases).astype(weights.dtype), "qkv_bias"))
        else:
            inputs.append(None)
        attributes: dict[str, object] = {"num_heads": block.q.heads}
        if block.causal is not None:
            attributes["unidirectional"] = 1
        if block.v.head_dim != block.q.head_dim:
            hidden = block.q.heads * block.q.head_dim
            attributes["qkv_hidden_sizes"] = [hidden, hidden, block.v.heads * block.v.head_dim]
        anchor = block.inner[-1]
        if extended is not None:
            inputs.append(FuseAttention._int32_mask(graph, extended.raw, casts, ctx, rule))
            attributes["mask_filter_value"] = extended.filter_value
        out = Value(block.out.name, _same_rows(q.x, block.out))
        FuseAttention._replace(graph, block, Node("Attention", inputs, [out],
                                                  attributes, domain=MS_DOMAIN, name=block.softmax.name.rsplit(
                                                      "/", 1)[0] + "/Attention" if block.softmax.name else ""),
                               anchor, ctx, rule)
        _drop_unread([c for p in block.projections for c in p.constants])

    @staticmethod
    def _int32_mask(graph: Graph, raw: Value, casts: dict[tuple[int, int], Value], ctx: PassContext,
                    rule: str) -> Value:
        """Cast(raw, int32), made once per graph and mask right where the mask is defined."""
        key = (id(graph), id(raw))
        if key in casts:
            return casts[key]
        if dtype_of(raw) == DType.INT32:
            casts[key] = raw
            return raw
        out = Value(graph.unique_name(f"{raw.name}_int32"), TensorType(DType.INT32, dims_of(raw)))
        cast = Node("Cast", [raw], [out], {"to": int(DType.INT32)}, name=f"{raw.name}_int32")
        ctx.created(cast, [], rule)
        defined_by = raw.producer
        if defined_by is not None and defined_by.graph is graph:
            graph.insert_after(defined_by, cast)
        elif graph.first is not None:
            graph.insert_before(graph.first, cast)
        else:
            graph.append(cast)
        casts[key] = _out(cast)
        return casts[key]

    # ----------------------------------------------------------------- ai.onnx Attention
    @staticmethod
    def _onnx_checks(block: _Block, opset: int) -> None:
        if opset < _ONNX_ATTENTION_OPSET:
            raise _NoMatch(f"form=onnx needs ai.onnx opset >= {_ONNX_ATTENTION_OPSET} (the model imports {opset})")
        dtype = dtype_of(block.out)
        if dtype is None or not dtype.is_float:
            raise _NoMatch(f"element type {dtype.short_name if dtype else '?'} is not a float type")
        if block.mask is not None:
            mask_type = dtype_of(block.mask)
            mask_shape = dims_of(block.mask)
            if mask_type != dtype:
                raise _NoMatch(f"the mask's type {mask_type.short_name if mask_type else '?'} is not the scores' type")
            if mask_shape is None or len(mask_shape) > 4:
                raise _NoMatch("the mask's rank is unknown or above 4")

    @staticmethod
    def _emit_onnx(graph: Graph, block: _Block, ctx: PassContext, rule: str) -> None:
        anchor = block.inner[-1]
        inputs: list[Value | None] = [block.q.src, block.k.src, block.v.src]
        if block.mask is not None:
            inputs.append(FuseAttention._query_broadcast_mask(graph, block, anchor, ctx, rule))
        attributes = {"q_num_heads": block.q.heads, "kv_num_heads": block.k.heads}
        if block.causal is not None:
            attributes["is_causal"] = 1
        name = block.softmax.name.rsplit("/", 1)[0] + "/Attention" if block.softmax.name else ""
        node = Node("Attention", inputs, [Value(block.out.name, block.out.type)], attributes, name=name)
        FuseAttention._replace(graph, block, node, anchor, ctx, rule)

    @staticmethod
    def _query_broadcast_mask(graph: Graph, block: _Block, anchor: Node, ctx: PassContext, rule: str) -> Value:
        """The mask with its query axis broadcast to S: Expand(mask, [1, 1, S, 1]) unless it is S already."""
        mask = block.mask
        assert mask is not None
        shape, q_shape = dims_of(mask), dims_of(block.q.src)
        if shape is not None and q_shape is not None and len(shape) >= 2 and shape[-2] is not None \
                and shape[-2] == q_shape[1] and shape[-2] != 1:
            return mask
        int64 = DType.INT64

        def op(op_type: str, inputs: list[Value], type_: TensorType | None, **attributes: object) -> Value:
            node = Node(op_type, inputs, [Value(graph.unique_name(op_type.lower()), type_)], attributes or None)
            ctx.created(node, [block.softmax], rule)
            graph.insert_before(anchor, node)
            return _out(node)

        seq = op("Shape", [block.q.src], TensorType(int64, (1,)), start=1, end=2)
        ones = graph.make_constant(np.array([1, 1], np.int64), "ones")
        one = graph.make_constant(np.array([1], np.int64), "one")
        target = op("Concat", [ones, seq, one], TensorType(int64, (4,)), axis=0)
        rank = max(len(shape) if shape is not None else 4, 4)
        full = None if shape is None else (*((1,) * (rank - len(shape))), *shape)
        expanded: tuple[Dim, ...] | None = None
        if full is not None and q_shape is not None:
            expanded = (full[0], full[1], q_shape[1], full[3])
        return op("Expand", [mask, target], TensorType(dtype_of(mask) or DType.FLOAT, expanded))

    # ----------------------------------------------------------------- shared
    @staticmethod
    def _replace(graph: Graph, block: _Block, node: Node, anchor: Node, ctx: PassContext, rule: str) -> None:
        """Insert `node` where the block ends, move the block's readers to it, remove the block."""
        nodes = block.nodes
        ctx.created(node, nodes, rule)
        graph.insert_before(anchor, node)
        block.out.replace_all_uses_with(_out(node), replace_graph_outputs=True)
        order = {n: i for i, n in enumerate(graph)}
        for old in sorted(nodes, key=lambda n: order[n], reverse=True):
            graph.remove(old)
