"""Streaming range observers: one per calibrated tensor, fed batch after batch, holding a few
numbers or a fixed-size histogram (never the activations), so calibration memory does not grow
with the number of samples.

* `MinMax`: the observed extremes (onnxruntime's MinMaxCalibrater without moving average).
* `Percentile`: the `percentile`-th percentile of |x| (onnxruntime's PercentileCalibrater with
  the `symmetric=True` that its `create_calibrator` passes by default), read off the |x|
  histogram with linear interpolation inside the bin; the range is [-t, t] clipped to the
  observed [min, max] (so a ReLU output gets [0, t]).
* `Entropy`: TensorRT's KL-divergence search (pytorch-quantization's `_compute_amax_entropy`):
  over a 2048-bin histogram of |x|, for each candidate threshold of i bins, P = the first i
  bins with the mass beyond them added to the last, Q = those bins quantized to 128 levels
  (256 for a non-negative tensor, quantized unsigned) and expanded back over P's non-empty
  bins, both smoothed as onnxruntime's `smooth_distribution` does (empty bins get 1e-4, taken
  from the others); the threshold with the least KL(P || Q) wins. Two departures, each for a
  failure seen here: exact zeros are left out (pytorch-quantization's `skip_zeros`; with them
  the digits CNN's ReLU outputs were clipped to a third of their range: `AbsHistogram`), and
  the candidates start `levels` bins above the first non-empty bin rather than above 0 (a
  tensor in [1, 3] was clipped to 1.002: `entropy_threshold_bins`). onnxruntime's own
  EntropyCalibrater histograms signed values with 128 bins by default, which leaves its
  search one candidate: the whole range. Like the percentile, the result is symmetric (|x|)
  and clipped to the observed [min, max]: a tensor with negative values gets [-t, t], a
  non-negative one [min, t].

The histogram (`AbsHistogram`) grows its range as batches arrive without ever re-reading data:
its range is always a power of two strictly above the largest |x| seen, so that when a larger
value arrives the range doubles k times and bin j of the old histogram is exactly bin j >> k of
the new one (the bin edges are exact binary fractions: no rounding moves a value across an
edge). The result is therefore the same whatever the batch size or order: streaming equals
one pass over all data. The price: between 1024 and 2048 of the bins hold data.

Degenerate tensors give valid finite ranges: a constant c gives [c, c], all zeros [0, 0], a
single sample its own values; an empty tensor gives no range (`range()` returns None). NaN or
Inf in a tensor is a one-line `BadInputError` naming it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlc.errors import BadInputError
from mlc.quantize.cache import TensorRange

METHODS = ("minmax", "percentile", "entropy")
HISTOGRAM_BINS = 2048
ENTROPY_LEVELS = 128  # int8's levels of |x| (TensorRT)
_SMOOTHING = 1e-4  # onnxruntime's smooth_distribution eps
_CHUNK = 1 << 20  # elements binned at a time (bounds the float64/int64 temporaries to 16 MiB)


class Observer:
    """Base of the observers: tracks the extremes; subclasses add what their method needs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.low = math.inf
        self.high = -math.inf
        self.count = 0

    def observe(self, array: np.ndarray) -> None:
        """Take one batch of the tensor's values."""
        values = np.asarray(array)
        if values.size == 0:
            return
        if values.dtype.kind != "f" or values.dtype.itemsize < 4:
            values = values.astype(np.float32)
        low, high = float(np.min(values)), float(np.max(values))
        if not (math.isfinite(low) and math.isfinite(high)):
            what = "NaN" if bool(np.isnan(values).any()) else "Inf"
            raise BadInputError(f"tensor {self.name!r} holds {what}: the model computes non-finite values on the "
                                "calibration data, which no range can hold")
        self.low, self.high = min(self.low, low), max(self.high, high)
        self.count += values.size
        self._take(values, max(-low, high))

    def _take(self, values: np.ndarray, amax: float) -> None:
        """What a subclass keeps of a batch (`amax`: its largest |x|)."""

    def range(self) -> TensorRange | None:
        """The range to quantize to; None when no element was ever seen."""
        if self.count == 0:
            return None
        return TensorRange(self.low, self.high)

    def _clipped(self, threshold: float) -> TensorRange:
        """[-t, t] clipped to the observed extremes (the symmetric form of the |x| methods)."""
        return TensorRange(max(self.low, -threshold), min(self.high, threshold))


class MinMax(Observer):
    """The observed minimum and maximum."""


class AbsHistogram:
    """Counts of |x| in `bins` equal bins over [0, 2**exponent), growing exactly (module
    docstring); exact zeros are counted apart (`zeros`), since every range represents 0 exactly
    (the zero point): the percentile counts them as the smallest values, the entropy search
    leaves them out (a ReLU output's spike at 0, smeared over a quantized level, would otherwise
    dominate the divergence and pull the threshold down: pytorch-quantization's `skip_zeros`)."""

    def __init__(self, bins: int = HISTOGRAM_BINS) -> None:
        if bins < 2 or bins & (bins - 1):
            raise ValueError(f"histogram bins must be a power of two, not {bins}")
        self.bins = bins
        self.counts = np.zeros(bins, dtype=np.int64)
        self.zeros = 0
        self.exponent: int | None = None  # None while every value seen was 0

    @property
    def top(self) -> float:
        """The upper edge of the last bin (0 while nothing but zeros was seen)."""
        return 0.0 if self.exponent is None else math.ldexp(1.0, self.exponent)

    @property
    def width(self) -> float:
        return self.top / self.bins

    def add(self, magnitudes: np.ndarray, amax: float) -> None:
        """Count non-negative values whose largest is `amax`."""
        zeros = magnitudes.size - int(np.count_nonzero(magnitudes))
        self.zeros += zeros
        if amax == 0.0:
            return
        exponent = math.frexp(amax)[1]  # amax = m * 2**exponent, 0.5 <= m < 1: amax < 2**exponent
        if self.exponent is None:
            self.exponent = exponent
        elif exponent > self.exponent:
            self._grow(exponent - self.exponent)
        # bin = floor(|x| * bins / top): a power-of-two scaling, exact in float64 (np.histogram
        # would compute in the input's float32 and overflow for |x| near float32's max)
        scale = self.bins / self.top
        flat = magnitudes.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            index = (flat[start:start + _CHUNK].astype(np.float64) * scale).astype(np.int64)
            self.counts += np.bincount(index, minlength=self.bins)
        self.counts[0] -= zeros

    def _grow(self, doublings: int) -> None:
        assert self.exponent is not None
        factor = 1 << min(doublings, self.bins.bit_length() - 1)
        merged = np.zeros(self.bins, dtype=np.int64)
        merged[:self.bins // factor] = self.counts.reshape(-1, factor).sum(axis=1)
        self.counts = merged
        self.exponent += doublings

    def percentile(self, q: float) -> float:
        """The value below which `q` percent of the counted values lie (linear within a bin)."""
        if self.exponent is None:
            return 0.0
        counts = self.counts.copy()
        counts[0] += self.zeros
        total = int(counts.sum())
        target = q / 100.0 * total
        cumulative = np.cumsum(counts)
        k = min(int(np.searchsorted(cumulative, target, side="left")), self.bins - 1)
        below = float(cumulative[k - 1]) if k else 0.0
        inside = float(counts[k])
        fraction = (target - below) / inside if inside else 1.0
        return (k + min(max(fraction, 0.0), 1.0)) * self.width


class _AbsHistogramObserver(Observer):
    """An observer that keeps a histogram of |x| and picks a threshold t from it: [-t, t],
    clipped to the observed extremes, is the range."""

    def __init__(self, name: str, bins: int) -> None:
        super().__init__(name)
        self.histogram = AbsHistogram(bins)

    def _take(self, values: np.ndarray, amax: float) -> None:
        self.histogram.add(np.abs(values), amax)

    def _threshold(self) -> float:
        raise NotImplementedError

    def range(self) -> TensorRange | None:
        if self.count == 0:
            return None
        return self._clipped(min(self._threshold(), max(-self.low, self.high)))


class Percentile(_AbsHistogramObserver):
    """The `percentile`-th percentile of |x| (onnxruntime's default symmetric percentile)."""

    def __init__(self, name: str, percentile: float = 99.99, bins: int = HISTOGRAM_BINS) -> None:
        super().__init__(name, bins)
        if not 0.0 < percentile <= 100.0:
            raise BadInputError(f"percentile {percentile}: must be in (0, 100]")
        self.percentile = percentile

    def _threshold(self) -> float:
        return self.histogram.percentile(self.percentile)


class Entropy(_AbsHistogramObserver):
    """TensorRT's KL-divergence threshold over the |x| histogram (module docstring)."""

    def __init__(self, name: str, bins: int = HISTOGRAM_BINS, levels: int = ENTROPY_LEVELS) -> None:
        super().__init__(name, bins)
        self.levels = levels

    def _threshold(self) -> float:
        levels = self.levels if self.low < 0 else 2 * self.levels  # unsigned: twice the levels
        return entropy_threshold_bins(self.histogram.counts, levels) * self.histogram.width


def _smooth(counts: np.ndarray) -> np.ndarray | None:
    """onnxruntime's smooth_distribution: empty bins get eps, taken evenly from the others."""
    zeros = counts == 0
    nonzero = counts.size - int(zeros.sum())
    if nonzero == 0:
        return None
    taken = _SMOOTHING * (counts.size - nonzero) / nonzero
    return np.where(zeros, _SMOOTHING, counts - taken)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    p = p / p.sum()
    q = q / q.sum()
    positive = (p > 0) & (q > 0)
    if bool(((p > 0) & (q <= 0)).any()):
        return math.inf
    return float(np.sum(p[positive] * np.log(p[positive] / q[positive])))


def entropy_threshold_bins(counts: np.ndarray, levels: int = ENTROPY_LEVELS) -> int:
    """The number of bins whose upper edge is the KL-optimal threshold: TensorRT's search over
    every candidate from `levels` bins above the first non-empty bin (TensorRT starts at bin
    `levels`, the same for data that reaches 0) to the last non-empty one. Starting above the
    data rather than above 0 matters for a tensor far from 0 (all values in [1, 3]): a candidate
    just above 1 clips everything into one bin, where P and Q are the same spike and the KL
    divergence is 0, so TensorRT's search would pick it."""
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return 0
    used = int(nonzero[-1]) + 1
    start = int(nonzero[0]) + levels
    if used <= start:
        return used  # the data spans at most `levels` bins: nothing worth clipping
    hist = counts[:used].astype(np.float64)
    tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # tail[i] = sum(hist[i:])
    best, best_kl = used, math.inf
    for i in range(start, used + 1):
        sliced = hist[:i]
        p = sliced.copy()
        p[-1] += tail[i]
        filled = sliced > 0
        group = (np.arange(i) * levels) // i
        sums = np.bincount(group, weights=sliced, minlength=levels)
        members = np.bincount(group, weights=filled, minlength=levels)
        q = np.where(filled, sums[group] / np.maximum(members[group], 1.0), 0.0)
        ps, qs = _smooth(p), _smooth(q)
        kl = math.inf if ps is None or qs is None else _kl(ps, qs)
        if kl < best_kl:
            best, best_kl = i, kl
    return best


def make_observer(method: str, name: str, options: dict[str, Any] | None = None) -> Observer:
    """The observer of `method` for tensor `name` (`options`: `percentile` for the percentile)."""
    options = options or {}
    if method == "minmax":
        return MinMax(name)
    if method == "percentile":
        return Percentile(name, float(options.get("percentile", 99.99)))
    if method == "entropy":
        return Entropy(name)
    raise BadInputError(f"calibration method {method!r}: expected one of {', '.join(METHODS)}")
