"""Quantization arithmetic of `quantize-qdq`: scales and zero points, weights, int32 biases.

Pure numpy, no graph: what the pass computes for each tensor, kept apart so that the rules can be
read (and tested) in one place. The conventions are onnxruntime's (`quant_utils.compute_scale_zp`),
so that its QDQ fusions take our graphs exactly as they take `quantize_static`'s:

* the real range is widened to hold zero, `[min(low, 0), max(high, 0)]` (ONNX's zero point is an
  integer, so 0.0 must be representable exactly: padding and ReLU outputs are exact zeros);
* u8 asymmetric: `scale = (hi - lo) / 255`, `zp = round(-lo / scale)` clamped to [0, 255];
  s8 asymmetric: the same over [-128, 127]; symmetric: `absmax = max(|lo|, |hi|)`, s8 uses
  [-127, 127] with `zp = 0` (`scale = absmax / 127`), u8 uses `scale = 2·absmax / 255`, `zp = 128`;
* weights: symmetric int8 over [-127, 127] (`scale = max|w| / 127`), per output channel or per
  tensor, zero points 0 — onnxruntime's per-channel QLinearConv needs every channel's zero point
  equal, and -128 is never produced, so a VNNI/AVX2 u8·s8 product cannot saturate its pairs;
* bias: int32 with `scale = x_scale · w_scale` (per channel when the weight is), zero point 0,
  which is what QLinearConv/QGemm add to their int32 accumulators.

Degenerate ranges never give a zero scale (a division by zero in QuantizeLinear, an Inf or NaN in
every reader): an activation whose widened range is narrower than `MIN_RANGE` (the constant-zero
tensor, hi == lo == 0) is quantized as the unit range, [0, 1] asymmetric (scale 1/255) or [-1, 1]
symmetric; values that small are zeros at the precision of any reader. A weight channel whose
values are all zero takes the largest scale of the tensor's other channels (1.0 when the whole
weight is zero), so that its int32 bias keeps the layer's precision (a tiny scale would push the
bias out of int32; onnxruntime uses 1.0). When `|bias| / (x_scale · w_scale)` would not fit int32
(a tiny input scale), the channel's weight scale grows until it fits, as onnxruntime does
(`_adjust_weight_scale_for_int32_bias`): the bias matters more than weights acting on ~0 inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.dtypes import DType

MIN_RANGE = 1e-10  # widened ranges narrower than this are degenerate (see the module doc string)
_INT32_LIMIT = float(np.iinfo(np.int32).max)
_BIAS_MARGIN = 1.0001  # as onnxruntime: keep |bias_q| a hair inside int32
_F32_TINY = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class QParams:
    """Per-tensor quantization of an activation: float32 scale, integer zero point, u8 or s8."""

    scale: float
    zero_point: int
    dtype: DType
    degenerate: bool = False

    def bounds(self) -> tuple[int, int]:
        return (0, 255) if self.dtype == DType.UINT8 else (-128, 127)

    def real_range(self) -> tuple[float, float]:
        """The real values the integer range stands for (what a reader can ever see)."""
        lo, hi = self.bounds()
        return (lo - self.zero_point) * self.scale, (hi - self.zero_point) * self.scale


def activation_qparams(low: float, high: float, dtype: DType, symmetric: bool) -> QParams:
    """Scale and zero point of a tensor observed in [low, high] (see the module doc string)."""
    lo, hi = min(float(low), 0.0), max(float(high), 0.0)
    degenerate = hi - lo < MIN_RANGE
    if degenerate:
        lo, hi = (-1.0, 1.0) if symmetric else (0.0, 1.0)
    if symmetric:
        absmax = max(-lo, hi)
        if dtype == DType.INT8:
            return QParams(float(np.float32(absmax / 127.0)), 0, dtype, degenerate)
        return QParams(float(np.float32(2.0 * absmax / 255.0)), 128, dtype, degenerate)
    qmin, qmax = (0, 255) if dtype == DType.UINT8 else (-128, 127)
    scale = float(np.float32((hi - lo) / 255.0))
    zero_point = int(np.clip(np.round(qmin - lo / scale), qmin, qmax))
    return QParams(scale, zero_point, dtype, degenerate)


def constant_qparams(array: np.ndarray, dtype: DType, symmetric: bool) -> QParams:
    """Per-tensor parameters of a constant read as an activation (an Add's constant operand)."""
    values = np.asarray(array, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    return activation_qparams(low, high, dtype, symmetric)


def quantize(array: np.ndarray, params: QParams) -> np.ndarray:
    """QuantizeLinear's arithmetic (round half to even, saturate) for a constant."""
    lo, hi = params.bounds()
    q = np.round(np.asarray(array, dtype=np.float64) / params.scale) + params.zero_point
    return np.clip(q, lo, hi).astype(params.dtype.numpy)


def weight_scales(weight: np.ndarray, axis: int | None) -> np.ndarray:
    """Symmetric int8 scales: max|w| / 127 per slice along `axis` (shape [C]) or per tensor
    (shape []); all-zero slices take the largest other scale, 1.0 when all are zero."""
    w = np.abs(np.asarray(weight, dtype=np.float64))
    if axis is None:
        absmax = np.asarray(w.max() if w.size else 0.0)
    else:
        absmax = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).max(axis=1)
    scales = absmax / 127.0
    positive = scales[scales >= _F32_TINY] if scales.ndim else scales[None][scales[None] >= _F32_TINY]
    fallback = float(positive.max()) if positive.size else 1.0
    return np.where(scales >= _F32_TINY, scales, fallback)


def fit_bias(weight_scale: np.ndarray, x_scale: float, bias: np.ndarray) -> np.ndarray:
    """Weight scales grown where `bias / (x_scale · w_scale)` would leave int32, and so that the
    bias scale is a normal float32 (never 0 after the cast)."""
    b = np.abs(np.asarray(bias, dtype=np.float64)).reshape(-1)
    if weight_scale.ndim == 0:
        b = np.asarray(b.max() if b.size else 0.0)
    need = np.maximum(_BIAS_MARGIN * b / _INT32_LIMIT, 2.0 * _F32_TINY) / float(x_scale)
    return np.asarray(np.maximum(weight_scale, need))


def quantize_weight(weight: np.ndarray, scales: np.ndarray, axis: int | None) -> np.ndarray:
    """int8 values of `weight` under symmetric `scales` (per slice along `axis`, or one)."""
    w = np.asarray(weight, dtype=np.float64)
    s = scales if axis is None else scales.reshape([-1 if i == axis else 1 for i in range(w.ndim)])
    return np.asarray(np.clip(np.round(w / s), -127, 127)).astype(np.int8)


def quantize_bias(bias: np.ndarray, bias_scale: np.ndarray) -> np.ndarray:
    """int32 values of a 1-D bias under `bias_scale` (per element or one)."""
    q = np.round(np.asarray(bias, dtype=np.float64).reshape(-1) / bias_scale)
    return np.asarray(np.clip(q, -_INT32_LIMIT, _INT32_LIMIT)).astype(np.int32)
