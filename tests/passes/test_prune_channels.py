"""prune-channels: structured pruning of Conv/Gemm/MatMul output channels, coupled channels together.

BEFORE/EXPECTED tests write the expected slices out by hand (`w[[1, 3]]`: the channels kept); the
weights give the weak channels (those to remove) a hundredth of the others' magnitude, so the
ranking is not in doubt. The pass is lossy, so these tests compare structure, not numbers; the
numbers are checked against the original with the removed channels zeroed (a model where the
removed channels are exactly zero computes the same as the pruned one), and the real exports
must run under onnxruntime (and TVM) with their output shapes unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.equality import assert_graph_equal
from mlc.ir.printer import print_ir
from mlc.numerics.reference import run_graph
from mlc.onnx_io.exporter import save_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.passes._channel_surgery import parameter_count
from mlc.pipelines import PIPELINES
from mlc.testing import as_graph, assert_pass, run_pass
from tests.passes.test_fuse_batchnorm import dense

ZOO = Path.home() / ".cache" / "mlc-zoo"


def weights(shape: tuple[int, ...], weak: list[int], seed: int = 0, axis: int = 0) -> np.ndarray:
    """Random float32 weights in ±[0.5, 1.5]; the `weak` channels (along `axis`) scaled by 0.01."""
    rng = np.random.default_rng(seed)
    array = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    index = [slice(None)] * len(shape)
    index[axis] = weak  # type: ignore[call-overload]
    array[tuple(index)] *= 0.01
    return array.astype(np.float32)


def consts(**arrays: np.ndarray) -> str:
    return "\n".join(dense(name, array) for name, array in arrays.items())


def remarks_with(ctx, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [r for r in ctx.remarks if text in r]


# ----------------------------------------------------------------- BEFORE / EXPECTED
def test_conv_conv() -> None:
    w1, b1, w2 = weights((4, 2, 1, 1), [0, 2]), weights((4,), [], 1), weights((3, 4, 1, 1), [], 2)
    text = '''graph "g" (%x: f32[1,2,4,4]) {{
{consts}
  %c: f32[1,{n},4,4] = Conv(%x, %w1, %b1) {{kernel_shape=[1, 1]}} name="c1"
  %r: f32[1,{n},4,4] = Relu(%c)
  %y: f32[1,3,4,4] = Conv(%r, %w2) {{kernel_shape=[1, 1]}} name="c2"
  return %y
}}'''
    before = text.format(consts=consts(w1=w1, b1=b1, w2=w2), n=4)
    keep = [1, 3]
    expected = text.format(consts=consts(w1=w1[keep], b1=b1[keep], w2=w2[:, keep]), n=2)
    ctx = assert_pass("prune-channels", before, expected, numeric=False, channels_removed=2, groups_pruned=1,
                      groups_left=1, params_removed=4 + 2 + 6)
    assert ctx.remarks == ["Conv 'c2': kept all channels, its channels reach the graph output %y"]
    # ratio 0 removes nothing; ratio 0.75 of 4 removes 3; norm l2 ranks alike here
    assert_pass("prune-channels{ratio=0.0}", before, before, numeric=False)
    assert_pass("prune-channels{ratio=0.75}", before, text.format(
        consts=consts(w1=w1[[3]], b1=b1[[3]], w2=w2[:, [3]]), n=1), numeric=False, channels_removed=3)
    assert_pass("prune-channels{norm=l2}", before, expected, numeric=False)


def test_conv_batchnorm_relu_conv() -> None:
    w1, w2 = weights((4, 2, 3, 3), [1, 2]), weights((2, 4, 1, 1), [], 1)
    gamma, beta, mean = weights((4,), [], 2), weights((4,), [], 3), weights((4,), [], 4)
    var = np.abs(weights((4,), [], 5))
    text = '''graph "g" (%x: f32[2,2,5,5]) {{
{consts}
  %c: f32[2,{n},5,5] = Conv(%x, %w1) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="c1"
  %b: f32[2,{n},5,5] = BatchNormalization(%c, %gamma, %beta, %mean, %var)
  %r: f32[2,{n},5,5] = Relu(%b)
  %y: f32[2,2,5,5] = Conv(%r, %w2) {{kernel_shape=[1, 1]}} name="c2"
  return %y
}}'''
    before = text.format(consts=consts(w1=w1, gamma=gamma, beta=beta, mean=mean, var=var, w2=w2), n=4)
    k = [0, 3]
    expected = text.format(consts=consts(w1=w1[k], gamma=gamma[k], beta=beta[k], mean=mean[k], var=var[k],
                                         w2=w2[:, k]), n=2)
    assert_pass("prune-channels", before, expected, numeric=False, channels_removed=2)


def test_conv_depthwise_conv() -> None:
    """A depthwise Conv continues its input's channels: its filters, bias and group shrink."""
    w1, dw, db, w3 = (weights((4, 2, 1, 1), [0, 2]), weights((4, 1, 3, 3), [], 1), weights((4,), [], 2),
                      weights((3, 4, 1, 1), [], 3))
    text = '''graph "g" (%x: f32[1,2,6,6]) {{
{consts}
  %c: f32[1,{n},6,6] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="expand"
  %h: f32[1,{n},6,6] = HardSwish(%c)
  %d: f32[1,{n},3,3] = Conv(%h, %dw, %db) {{group={n}, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]}}
  %y: f32[1,3,3,3] = Conv(%d, %w3) {{kernel_shape=[1, 1]}} name="project"
  return %y
}}'''
    before = text.format(consts=consts(w1=w1, dw=dw, db=db, w3=w3), n=4)
    k = [1, 3]
    expected = text.format(consts=consts(w1=w1[k], dw=dw[k], db=db[k], w3=w3[:, k]), n=2)
    assert_pass("prune-channels", before, expected, numeric=False, channels_removed=2)


RESIDUAL = '''graph "g" (%x: f32[1,2,4,4]) {{
{consts}
  %a: f32[1,{n},4,4] = Conv(%x, %w1, %b1) {{kernel_shape=[1, 1]}} name="c1"
  %r: f32[1,{n},4,4] = Relu(%a)
  %b: f32[1,{n},4,4] = Conv(%r, %w2) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="c2"
  %s: f32[1,{n},4,4] = Add(%b, %a) name="add"
  %t: f32[1,{n},4,4] = Relu(%s)
  %y: f32[1,3,4,4] = Conv(%t, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}'''


def test_residual_add_prunes_both_sides_as_one_group() -> None:
    """c1 and c2 are added: they lose the same channels, ranked by the sum of their normalized
    norms. c1 is weak in channels 0 and 1, c2 in 1 and 2 (and half as strong in 0): summed,
    channels 1 and 0 are the weakest, although c2 alone would drop 2."""
    w1 = weights((4, 2, 1, 1), [0, 1])
    w2 = weights((4, 4, 3, 3), [1, 2], 1)
    w2[0] *= 0.5
    b1, w3 = weights((4,), [], 2), weights((3, 4, 1, 1), [], 3)
    before = RESIDUAL.format(consts=consts(w1=w1, b1=b1, w2=w2, w3=w3), n=4)
    k = [2, 3]
    expected = RESIDUAL.format(consts=consts(w1=w1[k], b1=b1[k], w2=w2[k][:, k], w3=w3[:, k]), n=2)
    assert_pass("prune-channels", before, expected, numeric=False, channels_removed=2, groups_pruned=1)


def test_concat_offsets_in_the_consumer() -> None:
    """Each Concat input prunes on its own; the consumer keeps the rows of the kept positions."""
    w1, w2, w3 = weights((4, 2, 1, 1), [0, 2]), weights((2, 2, 1, 1), [1], 1), weights((3, 6, 1, 1), [], 2)
    text = '''graph "g" (%x: f32[1,2,4,4]) {{
{consts}
  %a: f32[1,{n1},4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %b: f32[1,{n2},4,4] = Conv(%x, %w2) {{kernel_shape=[1, 1]}} name="c2"
  %c: f32[1,{n},4,4] = Concat(%a, %b) {{axis=1}}
  %r: f32[1,{n},4,4] = Relu(%c)
  %y: f32[1,3,4,4] = Conv(%r, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}'''
    before = text.format(consts=consts(w1=w1, w2=w2, w3=w3), n1=4, n2=2, n=6)
    expected = text.format(consts=consts(w1=w1[[1, 3]], w2=w2[[0]], w3=w3[:, [1, 3, 4]]), n1=2, n2=1, n=3)
    assert_pass("prune-channels", before, expected, numeric=False, channels_removed=3, groups_pruned=2)
    # a graph input beside the Conv in the Concat keeps its channels; the Conv's still go
    with_input = before.replace('(%x: f32[1,2,4,4])', '(%x: f32[1,2,4,4], %e: f32[1,2,4,4])').replace(
        "Concat(%a, %b)", "Concat(%a, %e)")
    graph, ctx = run_pass("prune-channels", with_input)
    assert ctx.stats["channels_removed"] == 2 + 1, ctx.remarks  # c1 loses 2; c2, now read by nobody, 1
    (c3,) = [n for n in graph if n.name == "c3"]
    np.testing.assert_array_equal(c3.inputs[1].const.numpy(), w3[:, [1, 3, 4, 5]])  # type: ignore[union-attr]


def test_squeeze_excite() -> None:
    """x * HardSigmoid(fc2(Relu(fc1(GAP(x))))): fc2 (the gate) is coupled with x's source through the
    Mul; fc1 reads x's channels (its input slices go) and is a group of its own."""
    w1, f1, f1b, f2, f2b, w3 = (weights((4, 2, 1, 1), [0, 2]), weights((2, 4, 1, 1), [1], 1), weights((2,), [], 2),
                                weights((4, 2, 1, 1), [0, 2], 3), weights((4,), [], 4), weights((3, 4, 1, 1), [], 5))
    text = '''graph "g" (%x: f32[1,2,4,4]) {{
{consts}
  %a: f32[1,{n},4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %r: f32[1,{n},4,4] = Relu(%a)
  %p: f32[1,{n},1,1] = GlobalAveragePool(%r)
  %q: f32[1,{m},1,1] = Conv(%p, %f1, %f1b) {{kernel_shape=[1, 1]}} name="fc1"
  %qr: f32[1,{m},1,1] = Relu(%q)
  %e: f32[1,{n},1,1] = Conv(%qr, %f2, %f2b) {{kernel_shape=[1, 1]}} name="fc2"
  %g: f32[1,{n},1,1] = HardSigmoid(%e) {{alpha=0.16666667}}
  %m: f32[1,{n},4,4] = Mul(%g, %r) name="se"
  %y: f32[1,3,4,4] = Conv(%m, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}'''
    before = text.format(consts=consts(f1=f1, f1b=f1b, f2=f2, f2b=f2b, w1=w1, w3=w3), n=4, m=2)
    k = [1, 3]
    expected = text.format(consts=consts(f1=f1[[0]][:, k], f1b=f1b[[0]], f2=f2[k][:, [0]], f2b=f2b[k], w1=w1[k],
                                         w3=w3[:, k]), n=2, m=1)
    assert_pass("prune-channels", before, expected, numeric=False, channels_removed=3, groups_pruned=2)


def test_pool_flatten_gemm_and_flatten_of_spatial_dims() -> None:
    w1, b, c = weights((4, 2, 1, 1), [0, 2]), weights((4, 3), [], 1), weights((3,), [], 2)
    text = '''graph "g" (%x: f32[2,2,4,4]) {{
{consts}
  %a: f32[2,{n},4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %r: f32[2,{n},4,4] = Relu(%a)
  %p: f32[2,{n},1,1] = GlobalAveragePool(%r)
  %f: f32[2,{n}] = Flatten(%p) {{axis=1}}
  %y: f32[2,3] = Gemm(%f, %b, %c) name="fc"
  return %y
}}'''
    before = text.format(consts=consts(w1=w1, b=b, c=c), n=4)
    expected = text.format(consts=consts(w1=w1[[1, 3]], b=b[[1, 3]], c=c), n=2)
    assert_pass("prune-channels", before, expected, numeric=False, channels_removed=2)
    # without the pool: channel c covers features 4c..4c+3 of the flattened [2, 16]
    b16 = weights((16, 3), [], 3)
    spatial = '''graph "g" (%x: f32[2,2,2,2]) {{
{consts}
  %a: f32[2,{n},2,2] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %f: f32[2,{f}] = Flatten(%a)
  %y: f32[2,3] = Gemm(%f, %b, %c) name="fc"
  return %y
}}'''
    rows = [4, 5, 6, 7, 12, 13, 14, 15]
    assert_pass("prune-channels", spatial.format(consts=consts(w1=w1, b=b16, c=c), n=4, f=16),
                spatial.format(consts=consts(w1=w1[[1, 3]], b=b16[rows], c=c), n=2, f=8), numeric=False)


def test_gemm_gemm_columns_and_matmul() -> None:
    """Gemm with transB=1 keeps rows of B, transB=0 and MatMul keep columns; the reader keeps rows."""
    g1, c1, g2 = weights((4, 5), [0, 2]), weights((4,), [], 1), weights((4, 3), [], 2)
    text = '''graph "g" (%a: f32[2,5]) {{
{consts}
  %h: f32[2,{n}] = Gemm(%a, %g1, %c1) {{transB=1}} name="fc1"
  %r: f32[2,{n}] = Relu(%h)
  %y: f32[2,3] = Gemm(%r, %g2) name="fc2"
  return %y
}}'''
    k = [1, 3]
    assert_pass("prune-channels", text.format(consts=consts(g1=g1, c1=c1, g2=g2), n=4),
                text.format(consts=consts(g1=g1[k], c1=c1[k], g2=g2[k]), n=2), numeric=False)
    m1, m2 = weights((5, 4), [0, 2], axis=1), weights((4, 3), [], 2)
    matmul = '''graph "g" (%a: f32[2,7,5]) {{
{consts}
  %h: f32[2,7,{n}] = MatMul(%a, %m1) name="up"
  %r: f32[2,7,{n}] = Relu(%h)
  %y: f32[2,7,3] = MatMul(%r, %m2) name="down"
  return %y
}}'''
    assert_pass("prune-channels", matmul.format(consts=consts(m1=m1, m2=m2), n=4),
                matmul.format(consts=consts(m1=m1[:, k], m2=m2[k]), n=2), numeric=False)


def test_reshape_constant_holding_the_channel_count() -> None:
    w1, b = weights((4, 2, 1, 1), [0, 2]), weights((4, 3), [], 1)
    text = '''graph "g" (%x: f32[1,2,1,1]) {{
{consts}
  %a: f32[1,{n},1,1] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %f: f32[1,{n}] = Reshape(%a, %shape)
  %y: f32[1,3] = MatMul(%f, %b) name="fc"
  return %y
}}'''
    before = text.format(consts=consts(w1=w1, b=b, shape=np.array([1, 4], np.int64)), n=4)
    expected = text.format(consts=consts(w1=w1[[1, 3]], b=b[[1, 3]], shape=np.array([1, 2], np.int64)), n=2)
    assert_pass("prune-channels", before, expected, numeric=False)
    # -1 for the batch and the count literal: the literal is rewritten, the -1 still works out
    assert_pass("prune-channels", before.replace("[1, 4]", "[-1, 4]"), expected.replace("[1, 2]", "[-1, 2]"),
                numeric=False)


def test_pad_pool_reduce_squeeze_unsqueeze_move_the_channel_axis() -> None:
    """A spatial Pad, MaxPool, a ReduceMean over H and W without keepdims (a dynamo export's
    adaptive pool), then Unsqueeze in front and Squeeze back: the channels stay on their axis,
    which moves, and the MatMul's rows follow."""
    w1, m = weights((4, 2, 1, 1), [0, 2]), weights((4, 3), [], 1)
    text = '''graph "g" (%x: f32[2,2,4,4]) {{
{consts}
  %a: f32[2,{n},4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %p: f32[2,{n},6,6] = Pad(%a, %pads)
  %q: f32[2,{n},3,3] = MaxPool(%p) {{kernel_shape=[2, 2], strides=[2, 2]}}
  %r: f32[2,{n}] = ReduceMean(%q, %axes) {{keepdims=0}}
  %u: f32[1,2,{n}] = Unsqueeze(%r, %zero)
  %s: f32[2,{n}] = Squeeze(%u, %zero)
  %y: f32[2,3] = MatMul(%s, %m) name="fc"
  return %y
}}'''
    pads, axes, zero = np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), np.array([2, 3], np.int64), np.zeros(1, np.int64)
    before = text.format(consts=consts(w1=w1, pads=pads, axes=axes, zero=zero, m=m), n=4)
    expected = text.format(consts=consts(w1=w1[[1, 3]], pads=pads, axes=axes, zero=zero, m=m[[1, 3]]), n=2)
    assert_pass("prune-channels", before, expected, numeric=False, channels_removed=2)
    # ... but a ReduceMean over the channel axis or a Pad of the channels stops it
    _unchanged(f'''graph "g" (%x: f32[2,2,4,4]) {{
{consts(w1=w1, axes=np.array([1], np.int64), m=m)}
  %a: f32[2,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %r: f32[2,4,4] = ReduceMean(%a, %axes) {{keepdims=0}} name="rm"
  %y: f32[2,4,3] = MatMul(%r, %m) name="fc"
  return %y
}}''', "Conv 'c1': kept all channels, its channels are read by ReduceMean 'rm', which removes the channel axis")
    _unchanged(f'''graph "g" (%x: f32[2,2,4,4]) {{
{consts(w1=w1, pads=np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64), w3=weights((3, 5, 1, 1), [], 2))}
  %a: f32[2,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %p: f32[2,5,4,4] = Pad(%a, %pads) name="pad"
  %y: f32[2,3,4,4] = Conv(%p, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}''', "Conv 'c1': kept all channels, its channels are padded by Pad 'pad'")


def test_scope_global_ranks_channels_of_all_groups_together() -> None:
    """Group A (norms 0.1, 0.95, 1.0, 1.95; mean 1) and group B (0.2, 0.2, 0.3, 3.3; mean 1): the four
    lowest normalized scores are A0, B0, B1, B2. Per layer, each would lose two."""
    wa = np.array([0.1, 0.95, 1.0, 1.95], np.float32).reshape(4, 1, 1, 1)
    wb = np.array([0.2, 0.2, 0.3, 3.3], np.float32).reshape(4, 1, 1, 1) * 5  # scale: normalized away
    w3 = weights((2, 8, 1, 1), [])
    text = '''graph "g" (%x: f32[1,1,2,2]) {{
{consts}
  %a: f32[1,{na},2,2] = Conv(%x, %wa) {{kernel_shape=[1, 1]}} name="A"
  %b: f32[1,{nb},2,2] = Conv(%x, %wb) {{kernel_shape=[1, 1]}} name="B"
  %c: f32[1,{n},2,2] = Concat(%a, %b) {{axis=1}}
  %y: f32[1,2,2,2] = Conv(%c, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}'''
    before = text.format(consts=consts(wa=wa, wb=wb, w3=w3), na=4, nb=4, n=8)
    assert_pass("prune-channels{scope=global}", before, text.format(
        consts=consts(wa=wa[[1, 2, 3]], wb=wb[[3]], w3=w3[:, [1, 2, 3, 7]]), na=3, nb=1, n=4), numeric=False,
        channels_removed=4, groups_pruned=2)
    assert_pass("prune-channels{scope=layer}", before, text.format(
        consts=consts(wa=wa[[2, 3]], wb=wb[[2, 3]], w3=w3[:, [2, 3, 6, 7]]), na=2, nb=2, n=4), numeric=False)


def test_multiple_rounds_the_kept_channels() -> None:
    """12 channels at ratio 0.5 keep 6; with multiple=4 they keep 8 (the weakest 4 go), with
    multiple=8 also 8 (6 rounds up to 8); a group smaller than the multiple keeps the ratio's count."""
    from mlc.passes.prune_channels import rounded_keep

    assert [rounded_keep(12, k, 8) for k in (1, 3, 4, 6, 11, 12)] == [8, 8, 8, 8, 8, 12]
    assert [rounded_keep(16, k, 8) for k in (11, 12, 13)] == [8, 16, 16] and rounded_keep(4, 2, 8) == 2
    weak = [0, 2, 4, 6, 8, 10]
    w1, w2 = weights((12, 2, 1, 1), weak), weights((3, 12, 1, 1), [], 2)
    text = '''graph "g" (%x: f32[1,2,4,4]) {{
{consts}
  %c: f32[1,{n},4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %y: f32[1,3,4,4] = Conv(%c, %w2) {{kernel_shape=[1, 1]}} name="c2"
  return %y
}}'''
    before = text.format(consts=consts(w1=w1, w2=w2), n=12)
    order = np.argsort(np.abs(w1.reshape(12, -1)).sum(axis=1), kind="stable")
    keep = sorted(int(c) for c in order[4:])
    assert set(weak) - set(keep) and len(keep) == 8
    for multiple in (4, 8):
        assert_pass(f"prune-channels{{multiple={multiple}}}", before,
                    text.format(consts=consts(w1=w1[keep], w2=w2[:, keep]), n=8), numeric=False, channels_removed=4)
    strong = [c for c in range(12) if c not in weak]
    assert_pass("prune-channels{multiple=16}", before, text.format(consts=consts(w1=w1[strong], w2=w2[:, strong]),
                                                                   n=6), numeric=False, channels_removed=6)


def test_norm_l1_and_l2_rank_differently() -> None:
    """Row 0 = [1, 1, 1, 1] (l1 4, l2 2), row 1 = [3, 0, 0, 0] (l1 3, l2 3)."""
    w1 = np.array([[1, 1, 1, 1], [3, 0, 0, 0]], np.float32).reshape(2, 4, 1, 1)
    w2 = weights((2, 2, 1, 1), [])
    text = '''graph "g" (%x: f32[1,4,2,2]) {{
{consts}
  %a: f32[1,{n},2,2] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %y: f32[1,2,2,2] = Conv(%a, %w2) {{kernel_shape=[1, 1]}} name="c2"
  return %y
}}'''
    before = text.format(consts=consts(w1=w1, w2=w2), n=2)
    assert_pass("prune-channels{norm=l1}", before, text.format(consts=consts(w1=w1[[0]], w2=w2[:, [0]]), n=1),
                numeric=False)
    assert_pass("prune-channels{norm=l2}", before, text.format(consts=consts(w1=w1[[1]], w2=w2[:, [1]]), n=1),
                numeric=False)


# ----------------------------------------------------------------- must not change
def _unchanged(before: str, *remarks: str, spec: str = "prune-channels") -> None:
    ctx = assert_pass(spec, before, before, numeric=False)
    for remark in remarks:
        assert remarks_with(ctx, remark), (remark, ctx.remarks)


def test_must_not_change() -> None:
    w1, w2, w3 = weights((4, 2, 1, 1), [0, 2]), weights((4, 4, 1, 1), [1], 1), weights((3, 8, 1, 1), [], 2)
    c = consts(w1=w1, w2=w2)
    # the channel space reaches a graph output (through a Relu, and coupled through an Add)
    _unchanged(f'''graph "g" (%x: f32[1,2,4,4]) {{
{c}
  %a: f32[1,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %r: f32[1,4,4,4] = Relu(%a)
  %b: f32[1,4,4,4] = Conv(%r, %w2) {{kernel_shape=[1, 1]}} name="c2"
  %s: f32[1,4,4,4] = Add(%b, %a) name="add"
  return %s, %r
}}''', "Conv 'c1': kept all channels, its channels reach the graph output %r",
        "Conv 'c2': kept all channels, coupled through Add 'add' with Conv 'c1': its channels reach the graph "
        "output %r")
    # an op the analysis does not follow reads the channels
    _unchanged(f'''graph "g" (%x: f32[1,2,4,4]) {{
{c}
  %a: f32[1,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %t: f32[1,4,4,4] = Softmax(%a) {{axis=1}} name="sm"
  %y: f32[1,4,4,4] = Conv(%t, %w2) {{kernel_shape=[1, 1]}} name="c2"
  return %y
}}''', "Conv 'c1': kept all channels, its channels are read by Softmax 'sm', which the analysis does not follow")
    # a Concat on another axis than the channels'
    _unchanged(f'''graph "g" (%x: f32[1,2,4,4]) {{
{consts(w1=w1, w2=weights((4, 2, 1, 1), [1], 1), w3=weights((3, 4, 1, 1), [], 2))}
  %a: f32[1,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %b: f32[1,4,4,4] = Conv(%x, %w2) {{kernel_shape=[1, 1]}} name="c2"
  %c: f32[1,4,8,4] = Concat(%a, %b) {{axis=2}} name="cat"
  %y: f32[1,3,8,4] = Conv(%c, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}''', "Conv 'c1': kept all channels, its channels are concatenated by Concat 'cat' on axis 2, not the channel axis",
        "Conv 'c2': kept all channels, its channels are concatenated by Concat 'cat' on axis 2")
    # a weight that is not a constant (a graph input), on the reading side and on the source side
    _unchanged(f'''graph "g" (%x: f32[1,2,4,4], %wd: f32[4,4,1,1]) {{
{consts(w1=w1, w3=w3[:, :4])}
  %a: f32[1,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %b: f32[1,4,4,4] = Conv(%a, %wd) {{kernel_shape=[1, 1]}} name="c2"
  %y: f32[1,3,4,4] = Conv(%b, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}''', "Conv 'c1': kept all channels, its channels are read by Conv 'c2', whose weight is not a constant",
        "Conv 'c2': kept all channels, its weight is not a constant")
    # a residual Add with a graph input: the input's channels cannot go, so neither can c1's
    _unchanged(f'''graph "g" (%x: f32[1,2,4,4], %skip: f32[1,4,4,4]) {{
{consts(w1=w1, w3=w3[:, :4])}
  %a: f32[1,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %s: f32[1,4,4,4] = Add(%a, %skip) name="add"
  %y: f32[1,3,4,4] = Conv(%s, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}''', "Conv 'c1': kept all channels, coupled through Add 'add' with an operand: its channels are coupled through "
        "Add 'add' with %skip, which no prunable layer produces")
    # a Shape reads the channel count; a sub-graph reads the channels
    _unchanged(f'''graph "g" (%x: f32[1,2,4,4]) {{
{consts(w1=w1, w3=w3[:, :4])}
  %a: f32[1,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %n: i64[4] = Shape(%a) name="shape"
  %y: f32[1,3,4,4] = Conv(%a, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y, %n
}}''', "Conv 'c1': kept all channels, its channels are read by Shape 'shape', which the analysis does not follow")
    # excluded by name
    text = f'''graph "g" (%x: f32[1,2,4,4]) {{
{consts(w1=w1, w3=w3[:, :4])}
  %a: f32[1,4,4,4] = Conv(%x, %w1) {{kernel_shape=[1, 1]}} name="c1"
  %y: f32[1,3,4,4] = Conv(%a, %w3) {{kernel_shape=[1, 1]}} name="c3"
  return %y
}}'''
    _unchanged(text, "Conv 'c1': kept all channels, excluded by exclude_nodes", spec="prune-channels{exclude_nodes=c1}")
    _unchanged(text, spec="prune-channels{exclude_nodes=c3+c1}")


def test_options_are_checked() -> None:
    for spec, message in (("prune-channels{ratio=1.0}", "ratio 1: expected a fraction in [0, 1)"),
                          ("prune-channels{scope=model}", "scope 'model'"), ("prune-channels{norm=l3}", "norm 'l3'")):
        with pytest.raises(BadInputError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            run_pass(spec, 'graph "g" (%x: f32[1]) {\n  %y: f32[1] = Relu(%x)\n  return %y\n}')


# ----------------------------------------------------------------- numbers: pruning = zeroing
def test_pruned_graph_computes_the_original_with_removed_channels_zeroed() -> None:
    """A model without biases after its sources: zeroing the weights of the channels prune-channels
    removes makes those channels exactly zero everywhere, so the original with them zeroed must
    compute what the pruned graph computes (residual, concat, SE, depthwise, flatten+Gemm)."""
    rng = np.random.default_rng(3)
    arrays = {"w1": rng.standard_normal((8, 3, 3, 3)), "w2": rng.standard_normal((8, 8, 3, 3)),
              "dw": rng.standard_normal((8, 1, 3, 3)), "f1": rng.standard_normal((2, 8, 1, 1)),
              "f1b": rng.standard_normal(2), "f2": rng.standard_normal((8, 2, 1, 1)),
              "w4": rng.standard_normal((6, 3, 1, 1)), "g": rng.standard_normal((14 * 4, 5))}
    text = '''graph "g" (%x: f32[2,3,4,4]) {{
{consts}
  %a: f32[2,{n},4,4] = Conv(%x, %w1) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="c1"
  %r: f32[2,{n},4,4] = Relu(%a)
  %b: f32[2,{n},4,4] = Conv(%r, %w2) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="c2"
  %s: f32[2,{n},4,4] = Add(%b, %a) name="add"
  %d: f32[2,{n},2,2] = Conv(%s, %dw) {{group={n}, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]}} name="dw"
  %p: f32[2,{n},1,1] = GlobalAveragePool(%d)
  %q: f32[2,{m},1,1] = Conv(%p, %f1, %f1b) {{kernel_shape=[1, 1]}} name="fc1"
  %qr: f32[2,{m},1,1] = Relu(%q)
  %e: f32[2,{n},1,1] = Conv(%qr, %f2) {{kernel_shape=[1, 1]}} name="fc2"
  %gate: f32[2,{n},1,1] = Sigmoid(%e)
  %m: f32[2,{n},2,2] = Mul(%d, %gate) name="se"
  %o: f32[2,{k},2,2] = Conv(%x, %w4) {{kernel_shape=[1, 1], strides=[2, 2]}} name="c4"
  %cat: f32[2,{t},2,2] = Concat(%m, %o) {{axis=1}}
  %f: f32[2,{f}] = Flatten(%cat)
  %y: f32[2,5] = MatMul(%f, %g) name="fc"
  return %y
}}'''
    full = {k: v.astype(np.float32) for k, v in arrays.items()}
    before = text.format(consts=consts(**full), n=8, m=2, k=6, t=14, f=56)
    graph, ctx = run_pass("prune-channels", before)
    assert ctx.stats["groups_pruned"] == 3 and ctx.stats["channels_removed"] == 4 + 1 + 3, ctx.stats
    sizes = {n.name: n.inputs[1].type.shape for n in graph if n.op_type in ("Conv", "MatMul")}  # type: ignore[union-attr]
    assert sizes == {"c1": (4, 3, 3, 3), "c2": (4, 4, 3, 3), "dw": (4, 1, 3, 3), "fc1": (1, 4, 1, 1),
                     "fc2": (4, 1, 1, 1), "c4": (3, 3, 1, 1), "fc": (7 * 4, 5)}, sizes
    # which channels stayed: c1's rows are unique, so find them in the original
    kept_c1 = _rows_kept(full["w1"], next(n for n in graph if n.name == "c1").inputs[1].const.numpy())  # type: ignore[union-attr]
    kept_c4 = _rows_kept(full["w4"], next(n for n in graph if n.name == "c4").inputs[1].const.numpy())  # type: ignore[union-attr]
    kept_fc1 = _rows_kept(full["f1"][:, kept_c1],
                          next(n for n in graph if n.name == "fc1").inputs[1].const.numpy())  # type: ignore[union-attr]
    zeroed = dict(full)
    gone = np.setdiff1d(np.arange(8), kept_c1)
    for name in ("w1", "w2", "f2"):
        zeroed[name] = full[name].copy()
        zeroed[name][gone] = 0.0
    zeroed["w4"] = full["w4"].copy()
    zeroed["w4"][np.setdiff1d(np.arange(6), kept_c4)] = 0.0
    zeroed["f1"], zeroed["f1b"] = full["f1"].copy(), full["f1b"].copy()
    zeroed["f1"][np.setdiff1d(np.arange(2), kept_fc1)] = 0.0
    zeroed["f1b"][np.setdiff1d(np.arange(2), kept_fc1)] = 0.0
    reference = as_graph(text.format(consts=consts(**zeroed), n=8, m=2, k=6, t=14, f=56))
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)}
    expected, got = run_graph(reference, feeds), run_graph(graph, feeds)
    np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-5, atol=1e-5)
    # and prune-zero-channels finds exactly those zero channels: the same graph, constants included
    zero_pruned, _ = run_pass("prune-zero-channels", reference)
    assert_graph_equal(zero_pruned, graph, check_metadata=False)


def _rows_kept(original: np.ndarray, pruned: np.ndarray) -> np.ndarray:
    """Indices of the original's rows (axis 0) that the pruned weight holds (rows are unique)."""
    flat = original.reshape(len(original), -1)
    kept = [next(i for i in range(len(flat)) if np.array_equal(flat[i], row))
            for row in pruned.reshape(len(pruned), -1)]
    return np.array(kept)


# ----------------------------------------------------------------- real exports
def _torch_models():  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch", reason="torch builds the ResNet/MobileNetV3-style exports")
    nn = torch.nn

    def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list:
        return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]

    class Basic(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3))
            self.down = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else None

        def forward(self, x):  # type: ignore[no-untyped-def]
            return torch.relu(self.body(x) + (self.down(x) if self.down is not None else x))

    class ResNetish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(*conv_bn(3, 16, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.layers = nn.Sequential(Basic(16, 16, 1), Basic(16, 16, 1), Basic(16, 32, 2), Basic(32, 32, 1))
            self.fc = nn.Linear(32, 10)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))

    class SE(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)

        def forward(self, x):  # type: ignore[no-untyped-def]
            s = nn.functional.adaptive_avg_pool2d(x, 1)
            return x * nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(s))))

    class Inverted(nn.Module):
        def __init__(self, cin: int, mid: int, cout: int, k: int, stride: int, act: type) -> None:
            super().__init__()
            self.residual = stride == 1 and cin == cout
            self.block = nn.Sequential(*conv_bn(cin, mid, 1), act(), *conv_bn(mid, mid, k, stride, mid), act(),
                                       SE(mid), *conv_bn(mid, cout, 1))

        def forward(self, x):  # type: ignore[no-untyped-def]
            y = self.block(x)
            return x + y if self.residual else y

    class MobileNetish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*conv_bn(3, 16, 3, 2), nn.Hardswish(),
                                          Inverted(16, 48, 16, 3, 1, nn.Hardswish),
                                          Inverted(16, 64, 24, 5, 2, nn.ReLU),
                                          Inverted(24, 72, 24, 3, 1, nn.Hardswish),
                                          *conv_bn(24, 96, 1), nn.Hardswish())
            self.head = nn.Sequential(nn.Linear(96, 64), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(64, 10))

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))

    return torch, ResNetish, MobileNetish


def export(tmp_path: Path, name: str, plant: Callable[[Any], None] | None = None) -> Path:
    """The torch model `name` (resnet, mobilenet) with seeded weights and BatchNorm statistics,
    exported by TorchScript into tmp_path; `plant(model)` may edit the weights first."""
    torch, resnet, mobilenet = _torch_models()
    torch.manual_seed(0)
    model = {"resnet": resnet, "mobilenet": mobilenet}[name]().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        if plant is not None:
            plant(model)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"], dynamic_axes={"image": {0: "batch"}})
    return path


def optimized(path: Path, zero_channels: bool = False) -> Graph:
    """The model imported and run through -O2 (BatchNormalization folded into the Convs); without
    -O2's own prune-zero-channels unless `zero_channels`, so that the tests run it themselves."""
    graph = import_onnx(path)
    for spec in PIPELINES["O2"]:
        if zero_channels or spec != "prune-zero-channels":
            run_pass(spec, graph)
    return graph


def run_ort(graph: Graph, path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    save_onnx(graph, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("name, pruned_groups, left", [("resnet", 6, 1), ("mobilenet", 10, 1)])
def test_torch_exports_prune_to_a_valid_smaller_graph(tmp_path: Path, name: str, pruned_groups: int,
                                                      left: int) -> None:
    graph = optimized(export(tmp_path, name))
    feeds = {"image": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    (before,) = run_ort(graph, tmp_path / "o2.onnx", feeds)
    params = parameter_count(graph)
    _, ctx = run_pass("prune-channels{ratio=0.5}", graph)
    assert ctx.stats["groups_pruned"] == pruned_groups and ctx.stats["groups_left"] == left, (ctx.stats, ctx.remarks)
    (after,) = run_ort(graph, tmp_path / "pruned.onnx", feeds)
    assert after.shape == before.shape == (2, 10)
    assert np.isfinite(after).all() and not np.allclose(after, before)  # lossy: the numbers move
    assert parameter_count(graph) < 0.45 * params, (parameter_count(graph), params)
    assert ctx.stats["params_removed"] == params - parameter_count(graph)
    assert any("reach the graph output %logits" in r for r in ctx.remarks), ctx.remarks
    # pruning the pruned graph again at ratio 0 changes nothing
    assert_pass("prune-channels{ratio=0.0}", print_ir(graph, None), print_ir(graph, None), numeric=False)


def _zoo(name: str) -> Path:
    path = ZOO / f"{name}-ts.onnx"
    if not path.exists():
        pytest.skip(f"{path} is absent (benchmarks/bench_zoo.py builds the zoo exports)")
    return path


@pytest.mark.parametrize("name", ["tv_resnet18", "tv_mobilenet_v3"])
def test_zoo_exports_at_half(tmp_path: Path, name: str) -> None:
    graph = optimized(_zoo(name))
    feeds = {"image": np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)}
    (before,) = run_ort(graph, tmp_path / "o2.onnx", feeds)
    params = parameter_count(graph)
    _, ctx = run_pass("prune-channels{ratio=0.5}", graph)
    (after,) = run_ort(graph, tmp_path / "pruned.onnx", feeds)
    assert after.shape == before.shape and np.isfinite(after).all()
    assert parameter_count(graph) < 0.4 * params, (parameter_count(graph), params)
    assert ctx.stats["groups_left"] == 1, ctx.remarks  # the classifier, whose channels are the logits


def test_pruned_mobilenet_compiles_and_runs_with_tvm(tmp_path: Path) -> None:
    """The pruned tv_mobilenet_v3 (or, without the zoo, the torch MobileNetV3-style export) through
    `mlc.compile(..., "llvm")`: TVM builds it and computes what onnxruntime computes on it."""
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
    import mlc

    zoo = ZOO / "tv_mobilenet_v3-ts.onnx"
    graph = optimized(zoo if zoo.exists() else export(tmp_path, "mobilenet"))
    _, ctx = run_pass("prune-channels{ratio=0.5}", graph)
    assert ctx.stats["groups_pruned"] >= 10, ctx.stats
    pruned = tmp_path / "pruned.onnx"
    feeds = {"image": np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)}
    (expected,) = run_ort(graph, pruned, feeds)
    folder = mlc.compile(pruned, "llvm", tmp_path / "artifact", static_shapes={"image": (1, 3, 64, 64)},
                         verify="none")
    (got,) = mlc.load(folder).run(feeds).values()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
