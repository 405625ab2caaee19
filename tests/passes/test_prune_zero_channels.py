"""prune-zero-channels: channels that are exactly zero wherever they are read go, and the numbers
stay (the `exact` contract, checked by the numeric verifier on every rewrite here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import mlc
from mlc.ir.core import Graph
from mlc.pass_api import Numerics
from mlc.passes._channel_surgery import parameter_count
from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_batchnorm import random_model
from tests.passes.test_prune_channels import consts, export, optimized, weights

CONV_CONV = '''graph "g" (%x: f32[2,2,4,4]) {{
{consts}
  %c: f32[2,{n},4,4] = Conv(%x, %w1, %b1) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="c1"
  %r: f32[2,{n},4,4] = Relu(%c)
  %y: f32[2,3,4,4] = Conv(%r, %w2) {{kernel_shape=[1, 1]}} name="c2"
  return %y
}}'''


def _zero_rows(shape: tuple[int, ...], rows: list[int], seed: int = 0) -> np.ndarray:
    array = weights(shape, [], seed)
    array[rows] = 0.0
    return array


def test_zero_weight_and_zero_bias_channel_goes() -> None:
    w1, w2 = _zero_rows((4, 2, 3, 3), [1]), weights((3, 4, 1, 1), [], 1)
    b1 = weights((4,), [], 2)
    b1[1] = 0.0
    before = CONV_CONV.format(consts=consts(w1=w1, b1=b1, w2=w2), n=4)
    k = [0, 2, 3]
    expected = CONV_CONV.format(consts=consts(w1=w1[k], b1=b1[k], w2=w2[:, k]), n=3)
    ctx = assert_pass("prune-zero-channels", before, expected, channels_removed=1, groups_pruned=1,
                      params_removed=18 + 1 + 3)
    assert dict(ctx.rules) == {"zero-channels": 1}


def test_all_zero_keeps_one_channel() -> None:
    w1, w2 = _zero_rows((2, 2, 3, 3), [0, 1]), weights((3, 2, 1, 1), [], 1)
    before = CONV_CONV.format(consts=consts(w1=w1, b1=np.zeros(2, np.float32), w2=w2), n=2)
    expected = CONV_CONV.format(consts=consts(w1=w1[[0]], b1=np.zeros(1, np.float32), w2=w2[:, [0]]), n=1)
    assert_pass("prune-zero-channels", before, expected, channels_removed=1)


BN = '''graph "g" (%x: f32[2,2,4,4]) {{
{consts}
  %c: f32[2,{n},4,4] = Conv(%x, %w1) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="c1"
  %b: f32[2,{n},4,4] = BatchNormalization(%c, %gamma, %beta, %mean, %var) name="bn"
  %r: f32[2,{n},4,4] = Relu(%b)
  %y: f32[2,3,4,4] = Conv(%r, %w2) {{kernel_shape=[1, 1]}} name="c2"
  return %y
}}'''


def test_batchnorm_without_shift_keeps_zero_and_its_parameters_are_sliced() -> None:
    w1, w2 = _zero_rows((3, 2, 3, 3), [2]), weights((3, 3, 1, 1), [], 1)
    gamma, beta, mean = weights((3,), [], 2), weights((3,), [], 3), weights((3,), [], 4)
    var = np.abs(weights((3,), [], 5))
    beta[2], mean[2] = 0.0, 0.0  # (0 - 0) * s + 0 = 0
    before = BN.format(consts=consts(w1=w1, gamma=gamma, beta=beta, mean=mean, var=var, w2=w2), n=3)
    k = [0, 1]
    expected = BN.format(consts=consts(w1=w1[k], gamma=gamma[k], beta=beta[k], mean=mean[k], var=var[k],
                                       w2=w2[:, k]), n=2)
    assert_pass("prune-zero-channels", before, expected, channels_removed=1)


# ----------------------------------------------------------------- must not change
def _unchanged(before: str, *remarks: str) -> None:
    ctx = assert_pass("prune-zero-channels", before, before)
    for remark in remarks:
        assert any(remark in r for r in ctx.remarks), (remark, ctx.remarks)


def test_must_not_change_when_the_zero_channel_is_made_nonzero() -> None:
    w1, w2 = _zero_rows((4, 2, 3, 3), [1]), weights((3, 4, 1, 1), [], 1)
    why = "Conv 'c1': kept zero-weight channels [1], they are not zero where they are read"
    # a bias
    _unchanged(CONV_CONV.format(consts=consts(w1=w1, b1=weights((4,), [], 2), w2=w2), n=4), why)
    # a BatchNormalization shift (beta, or a nonzero mean)
    gamma, beta, mean = weights((4,), [], 2), weights((4,), [], 3), np.zeros(4, np.float32)
    var = np.abs(weights((4,), [], 5))
    _unchanged(BN.format(consts=consts(w1=w1, gamma=gamma, beta=beta, mean=mean, var=var, w2=w2), n=4), why)
    _unchanged(BN.format(consts=consts(w1=w1, gamma=gamma, beta=np.zeros(4, np.float32), mean=weights((4,), [], 4),
                                       var=var, w2=w2), n=4), why)
    # Sigmoid(0) = 0.5; HardSigmoid(0) = beta
    no_bias = CONV_CONV.replace("Conv(%x, %w1, %b1)", "Conv(%x, %w1)")
    for act in ("Sigmoid(%c)", "HardSigmoid(%c) {{alpha=0.2}}", "Exp(%c)"):
        _unchanged(no_bias.replace("Relu(%c)", act).format(consts=consts(w1=w1, w2=w2), n=4), why)
    # a residual Add where only one side is zero in that channel
    residual = '''graph "g" (%x: f32[2,2,4,4]) {{
{consts}
  %a: f32[2,4,4,4] = Conv(%x, %w1) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="c1"
  %b: f32[2,4,4,4] = Conv(%x, %w3) {{kernel_shape=[1, 1]}} name="c3"
  %s: f32[2,4,4,4] = Add(%a, %b) name="add"
  %y: f32[2,3,4,4] = Conv(%s, %w2) {{kernel_shape=[1, 1]}} name="c2"
  return %y
}}'''
    _unchanged(residual.format(consts=consts(w1=w1, w3=weights((4, 2, 1, 1), [], 3), w2=w2)), why)
    # ... and when both are, it goes (the Add of two zeros is zero)
    w3 = _zero_rows((4, 2, 1, 1), [1], 3)
    k = [0, 2, 3]
    assert_pass("prune-zero-channels", residual.format(consts=consts(w1=w1, w3=w3, w2=w2)),
                residual.replace("4,4,4]", "3,4,4]").format(consts=consts(w1=w1[k], w3=w3[k], w2=w2[:, k])),
                channels_removed=1)
    # zero channels that reach a graph output stay
    _unchanged(no_bias.replace("return %y", "return %y, %r").format(consts=consts(w1=w1, w2=w2), n=4),
               "Conv 'c1': kept all channels, its channels reach the graph output %r")


# ----------------------------------------------------------------- the acceptance model
def planted_model() -> tuple[Graph, Graph, int]:
    """(original, copy, zero channels planted) of a model with a residual Add, a depthwise Conv, a
    squeeze-excite gate, a Concat and a Flatten into a Gemm, whose sources have exactly-zero
    channels: 2 in the residual group (zero in both c1 and c2), 1 in the SE reducer, 2 in the
    Concat's second input. c5's channel 0 has zero weights but a bias: it stays."""
    rng = np.random.default_rng(11)

    def w(*shape: int, zero: tuple[int, ...] = ()) -> np.ndarray:
        array = rng.standard_normal(shape)
        array[list(zero)] = 0.0
        return array

    inits = {"w1": w(8, 3, 3, 3, zero=(2, 5)), "b1": w(8, zero=(2, 5)), "w2": w(8, 8, 3, 3, zero=(2, 5)),
             "dw": w(8, 1, 3, 3), "db": w(8, zero=(2, 5)), "f1": w(4, 8, 1, 1, zero=(3,)), "f1b": w(4, zero=(3,)),
             "f2": w(8, 4, 1, 1), "f2b": w(8), "w4": w(6, 3, 1, 1, zero=(0, 4)), "w5": w(4, 3, 1, 1, zero=(0,)),
             "b5": w(4), "g": w(18 * 4, 5), "gc": w(5)}
    inits["b5"][0] = 0.5  # positive: Relu keeps it, so c5's zero-weight channel 0 is a constant 0.5
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1], name="c1"),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["b"], pads=[1, 1, 1, 1], name="c2"),
             helper.make_node("Add", ["b", "a"], ["s"], name="add"),
             helper.make_node("Conv", ["s", "dw", "db"], ["d"], group=8, pads=[1, 1, 1, 1], strides=[2, 2], name="dw"),
             helper.make_node("HardSwish", ["d"], ["h"]),
             helper.make_node("GlobalAveragePool", ["h"], ["p"]),
             helper.make_node("Conv", ["p", "f1", "f1b"], ["q"], name="fc1"),
             helper.make_node("Relu", ["q"], ["qr"]),
             helper.make_node("Conv", ["qr", "f2", "f2b"], ["e"], name="fc2"),
             helper.make_node("HardSigmoid", ["e"], ["gate"], alpha=1 / 6),
             helper.make_node("Mul", ["h", "gate"], ["m"], name="se"),
             helper.make_node("Conv", ["x", "w4"], ["o"], strides=[2, 2], name="c4"),
             helper.make_node("Conv", ["x", "w5", "b5"], ["o5"], strides=[2, 2], name="c5"),
             helper.make_node("Concat", ["m", "o", "o5"], ["cat"], axis=1),
             helper.make_node("Relu", ["cat"], ["cr"]),
             helper.make_node("Flatten", ["cr"], ["f"]),
             helper.make_node("Gemm", ["f", "g", "gc"], ["y"], name="fc")]
    build = lambda: random_model(nodes, inits, {"x": [2, 3, 4, 4]}, {"y": [2, 5]})  # noqa: E731
    return build(), build(), 2 + 1 + 2


def test_residual_concat_se_model_prunes_exactly() -> None:
    original, graph, planted = planted_model()
    _, ctx = run_pass("prune-zero-channels", graph)
    assert ctx.stats["channels_removed"] == planted and ctx.stats["groups_pruned"] == 3, (ctx.stats, ctx.remarks)
    shapes = {n.name: n.inputs[1].type.shape for n in graph if n.op_type in ("Conv", "Gemm")}  # type: ignore[union-attr]
    assert shapes == {"c1": (6, 3, 3, 3), "c2": (6, 6, 3, 3), "dw": (6, 1, 3, 3), "fc1": (3, 6, 1, 1),
                      "fc2": (6, 3, 1, 1), "c4": (4, 3, 1, 1), "c5": (4, 3, 1, 1), "fc": (14 * 4, 5)}, shapes
    assert next(n for n in graph if n.name == "dw").attr("group") == 6
    assert parameter_count(graph) < parameter_count(original)
    assert any("Conv 'c5': kept zero-weight channels [0]" in r for r in ctx.remarks), ctx.remarks
    for seed in (0, 1, 2):
        assert_numerically_equivalent(original, graph, Numerics.EXACT, seed=seed)
    # idempotent: nothing zero is left to remove
    _, again = run_pass("prune-zero-channels", graph)
    assert again.rewrites == 0


def test_through_mlc_optimize_with_the_numeric_verifier(tmp_path: Path) -> None:
    """`mlc optimize --passes prune-zero-channels` checks the result against the model (exit 1 on a
    mismatch): the planted model passes, and the written model is smaller."""
    original, _, _ = planted_model()
    from mlc.onnx_io.exporter import save_onnx

    source = tmp_path / "planted.onnx"
    save_onnx(original, source)
    written = mlc.optimize(source, tmp_path / "out.onnx", passes="prune-zero-channels", verify="final")
    model = onnx.load(str(written))
    sizes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert sum(int(np.prod(s)) for s in sizes.values()) < parameter_count(original)


def test_torch_resnet_with_zeroed_channels(tmp_path: Path) -> None:
    """Zero filters whose BatchNormalization has mean 0 and beta 0 fold (at -O2) into zero
    channels: 2 in the stem's residual group (the stem and both layer1 blocks' second Convs),
    2 in a block's inner Conv, 1 in the downsampling group. A zero filter with a BN shift stays."""
    torch = pytest.importorskip("torch", reason="torch builds the ResNet-style export")

    def plant(model: torch.nn.Module) -> None:
        def zero(seq: torch.nn.Sequential, at: int, channels: list[int], shift: bool = False) -> None:
            conv, bn = seq[at], seq[at + 1]
            conv.weight[channels] = 0.0
            bn.running_mean[channels] = 0.0
            bn.bias[channels] = 0.5 if shift else 0.0

        layers = model.layers
        for seq, at in ((model.stem, 0), (layers[0].body, 3), (layers[1].body, 3)):
            zero(seq, at, [3, 7])
        zero(layers[0].body, 0, [0, 5])
        zero(layers[1].body, 0, [2], shift=True)
        for seq, at in ((layers[2].body, 3), (layers[2].down, 0), (layers[3].body, 3)):
            zero(seq, at, [10])

    before = optimized(export(tmp_path, "resnet", plant))
    graph = optimized(export(tmp_path, "resnet", plant))
    _, ctx = run_pass("prune-zero-channels", graph)
    assert ctx.stats["channels_removed"] == 5 and ctx.stats["groups_pruned"] == 3, (ctx.stats, ctx.remarks)
    assert any("kept zero-weight channels [2]" in r for r in ctx.remarks), ctx.remarks
    for seed in (0, 1):
        assert_numerically_equivalent(before, graph, Numerics.EXACT, seed=seed)
    at_o2 = optimized(export(tmp_path, "resnet", plant), zero_channels=True)
    assert parameter_count(at_o2) == parameter_count(graph), "-O2 runs prune-zero-channels itself"

