"""Where Q, K and V come from: the constant projections of one input (Attention's packed weights),
or, for MultiHeadAttention, any 3-D tensors with their bias Adds folded into its packed bias.

    q = Add(MatMul(x, Wq), bq)   k, v likewise                         (BERT: three projections)
    q, k, v = Split(Add(MatMul(x, W), b), [H*d] * 3, axis=2)           (GPT-2's c_attn: one, sliced)
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.passes._attention_block import Block, HeadSplit, MhaInputs, Projection, operand
from mlc.passes._match_basics import const_array, dtype_of, input_at, label
from mlc.passes._transformer_match import dims_of, producer


def _bias_add(add: Node, split: HeadSplit, what: str) -> tuple[Node, np.ndarray, Value] | str:
    """(the MatMul, the bias, its value) of the projection's Add(MatMul, b)."""
    for position in (0, 1):
        mm = producer(add.inputs[position], "MatMul")
        if mm is None:
            continue
        bias_value = operand(add, 1 - position)
        if isinstance(bias_value, str):
            return bias_value
        bias, width = const_array(bias_value), split.heads * split.head_dim
        if bias is None or bias.size != width or bias.shape[-1:] != (width,):
            return f"the {what} bias of {label(add)} is not a constant vector"
        return mm, bias, bias_value
    return f"{what} is not projected by MatMul + Add(bias)"


def projection(split: HeadSplit, what: str) -> Projection | str:
    """The constant linear map that computes the head split's input."""
    add = producer(split.src, "Add")
    if add is None:
        mm = producer(split.src, "MatMul")
        if mm is None:
            return f"{what} is not projected by a MatMul"
        nodes, bias, constants = [mm], None, []
    else:
        found = _bias_add(add, split, what)
        if isinstance(found, str):
            return found
        mm, bias, bias_value = found
        nodes, constants = [add, mm], [bias_value]
    x, weight_value = operand(mm, 0), input_at(mm, 1)
    if isinstance(x, str):
        return x
    weight = const_array(weight_value)
    if weight_value is None or weight is None or weight.ndim != 2:
        return f"the {what} weight of {label(mm)} is not a constant matrix"
    constants.append(weight_value)
    return Projection(x, weight, None if bias is None else bias.reshape(-1), nodes, constants)


def packed_split(block: Block) -> Node | None:
    """The one Split whose outputs 0, 1, 2 are Q, K and V (GPT-2's c_attn), if there is one."""
    sources = [block.q.src, block.k.src, block.v.src]
    split = producer(sources[0], "Split")
    if split is None or [v.producer for v in sources] != [split] * 3 or list(split.outputs) != sources:
        return None
    return split


def split_projections(block: Block, split: Node) -> list[Projection] | str:
    """Q, K and V as column slices of the packed projection Add(MatMul(x, W), b) that `split` cuts."""
    packed = operand(split)
    if isinstance(packed, str):
        return packed
    rank = len(dims_of(packed) or ())
    if rank != 3 or split.attr("axis", 0) not in (2, -1):
        return f"{label(split)} does not split the last axis of a 3-D projection"
    sizes = const_array(split.inputs[1]) if len(split.inputs) > 1 and split.inputs[1] is not None else None
    widths = [int(w) for w in sizes.reshape(-1)] if sizes is not None else split.attr("split")
    expected = [s.heads * s.head_dim for s in (block.q, block.k, block.v)]
    if widths is None:  # equal parts (num_outputs, or no sizes at all)
        total = (dims_of(packed) or (None,))[-1]
        widths = [total // 3] * 3 if isinstance(total, int) and total % 3 == 0 else None
    if widths is None or list(widths) != expected:
        return f"{label(split)} splits into {widths}, not Q, K, V widths {expected}"
    whole = projection(HeadSplit(packed, 1, sum(expected), []), "the packed QKV")
    if isinstance(whole, str):
        return whole
    bounds = np.cumsum([0, *expected])
    return [Projection(whole.x, whole.weight[:, bounds[i]:bounds[i + 1]],
                       None if whole.bias is None else whole.bias[bounds[i]:bounds[i + 1]],
                       [*whole.nodes, split], whole.constants) for i in range(3)]


def _three_projections(block: Block) -> list[Projection] | str:
    projections: list[Projection] = []
    for head, what in ((block.q, "Q"), (block.k, "K"), (block.v, "V")):
        one = projection(head, what)
        if isinstance(one, str):
            return one
        projections.append(one)
    return projections


def packed_projections(block: Block) -> list[Projection] | str:
    """Q, K and V projected from one 3-D input by constant weights of one input size and type."""
    split = packed_split(block)
    found = split_projections(block, split) if split is not None else _three_projections(block)
    if isinstance(found, str):
        return found
    projections = found
    for other, what in zip(projections[1:], "KV", strict=True):
        if other.x is not projections[0].x:
            return f"Q and {what} are not projected from the same input"
    x_shape = dims_of(projections[0].x)
    if x_shape is None or len(x_shape) != 3:
        return "the projected input is not known to be 3-D [batch, sequence, hidden]"
    if len({p.weight.shape[0] for p in projections}) != 1 or len({p.weight.dtype for p in projections}) != 1:
        return "the Q, K and V weights differ in input size or type"
    return projections


def mha_inputs(block: Block) -> MhaInputs:
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
                constant, other = add.inputs[position], add.inputs[1 - position]
                array = const_array(constant)
                if constant is not None and array is not None and array.shape[-1:] == (width,) \
                        and array.size == width and other is not None and const_array(other) is None \
                        and dims_of(other) == dims_of(src):
                    src, bias = other, array.reshape(-1)
                    adds.append(add)
                    constants.append(constant)
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
    return MhaInputs(qkv, packed, adds, constants)
