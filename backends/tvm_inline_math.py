"""Legalizes float32 exp, sigmoid, softmax and erf for `llvm` as arithmetic LLVM can inline and
vectorize, instead of one libm call per element.

Why: TOPI computes `exp` and `erf` through LLVM's intrinsics, which x86 code generation turns into
calls to libm's `expf` / `erff` per element (no vector math library is linked). In the zoo's
BERT-style encoder at 128 tokens the two softmaxes took 0.49 ms of 1.2 ms and the GELU's erf most
of 0.22 ms; with the functions below the softmaxes take 0.22 ms, and erf alone runs 33x faster
(2^20 values: 12.2 -> 0.37 ms; Intel Xeon AVX-512, 2026-12-05).

`exp_f32` is the classic single-precision scheme (as in Cephes' `expf`): n = round(x / ln 2),
r = x - n ln 2 with ln 2 split in two parts so r is exact, a degree-6 polynomial for e^r, and the
scale 2^n built from exponent bits, applied in two halves so that results near overflow and in
the subnormal range come out right. It is within 2 ulp of the correctly rounded result over the
float range (`tests/backends/test_tvm_inline_math.py` measures it against float64), returns +inf
past 88.72, 0 below -103.97, and NaN for NaN.

erf is TOPI's `fast_erf` (a rational approximation on [-4, 4], within 5e-7 of the true value,
about 8 float32 steps near +-1, measured in the same test; onnxruntime's own erf is a polynomial
too) with NaN passed through (TOPI's clamp turns NaN into 1).
"""

from __future__ import annotations

from typing import Any

from tvm import relax, te, tirx, topi
from tvm.relax.transform.legalize_ops.nn import _nn_softmax

_POLYNOMIAL = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
               5.0000001201e-1)  # e^r ~ 1 + r + r^2 * P(r) on |r| <= ln(2) / 2
_LN2_HIGH, _LN2_LOW = 0.693359375, -2.12194440e-4  # ln 2 = high + low; high has 9 significant bits
_LOG2_E = 1.44269504088896341


def exp_f32(x: Any) -> Any:
    """e^x for a float32 TIR expression, as arithmetic and bit operations only (module doc).

    Temporaries are shared sub-expressions, not `Let` bindings: MetaSchedule's feature extraction
    has no rule for `Let` (`mlc tune` failed on every model with a softmax), and LLVM merges the
    repeated sub-expressions anyway."""

    def f32(value: float) -> Any:
        return tirx.const(value, "float32")

    clamped = tirx.max(tirx.min(x, f32(89.0)), f32(-104.0))
    n = tirx.floor(clamped * f32(_LOG2_E) + f32(0.5))
    r = clamped - n * f32(_LN2_HIGH) - n * f32(_LN2_LOW)
    poly = f32(_POLYNOMIAL[0])
    for coefficient in _POLYNOMIAL[1:]:
        poly = poly * r + f32(coefficient)
    mantissa = poly * r * r + r + f32(1.0)
    n_int = n.astype("int32")
    half = n_int >> 1  # 2^n as 2^half * 2^(n - half): each factor stays a normal float
    scaled = (mantissa * tirx.reinterpret("float32", (half + 127) << 23)
              * tirx.reinterpret("float32", (n_int - half + 127) << 23))
    return tirx.Select(tirx.isnan(x), x, scaled)


def _softmax_compute(data: te.Tensor, axis: int) -> te.Tensor:
    """max, exp(x - max), sum, divide over `axis`; the block names are TOPI's."""
    rank = len(data.shape)
    axis = axis % rank

    def reduced(index: tuple[Any, ...], k: Any) -> tuple[Any, ...]:
        return (*index[:axis], k, *index[axis:])

    outer_shape = tuple(d for i, d in enumerate(data.shape) if i != axis)
    k_max = te.reduce_axis((0, data.shape[axis]), "k")
    maximum = te.compute(outer_shape, lambda *i: te.max(data[reduced(i, k_max)], axis=k_max), name="T_softmax_maxelem")

    def outer(index: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*index[:axis], *index[axis + 1:])

    exp = te.compute(data.shape, lambda *i: exp_f32(data[i] - maximum[outer(i)]), name="T_softmax_exp")
    k_sum = te.reduce_axis((0, data.shape[axis]), "k")
    total = te.compute(outer_shape, lambda *i: te.sum(exp[reduced(i, k_sum)], axis=k_sum), name="T_softmax_expsum")
    return te.compute(data.shape, lambda *i: exp[i] / total[outer(i)], name="T_softmax_norm")


def _is_float32(call: Any) -> bool:
    return str(getattr(call.ty, "dtype", "")) == "float32"


def legalize_softmax(builder: Any, call: Any) -> Any:
    """`relax.nn.softmax`: float32 with `exp_f32`, TVM's own legalization otherwise."""
    if not _is_float32(call):
        return _nn_softmax(builder, call)
    return builder.call_te(_softmax_compute, call.args[0], int(call.attrs.axis), primfunc_name_hint="softmax")


def _tvm_legalization(op_name: str) -> Any:
    """TVM's registered legalization of `op_name` (for what this module leaves alone)."""
    from tvm import ir

    return ir.Op.get(op_name).get_attr("FLegalize")


def _exp_compute(data: te.Tensor) -> te.Tensor:
    return te.compute(data.shape, lambda *i: exp_f32(data[i]), name="T_exp")


def _sigmoid_compute(data: te.Tensor) -> te.Tensor:
    one = tirx.const(1.0, "float32")
    return te.compute(data.shape, lambda *i: one / (one + exp_f32(-data[i])), name="T_sigmoid")


def _erf_compute(data: te.Tensor) -> te.Tensor:
    approximated = topi.fast_erf(data)
    return te.compute(data.shape, lambda *i: tirx.Select(tirx.isnan(data[i]), data[i], approximated[i]), name="T_erf")


def _float32_only(op_name: str, compute: Any, hint: str) -> Any:
    def legalize(builder: Any, call: Any) -> Any:
        if not _is_float32(call):
            return _tvm_legalization(op_name)(builder, call)
        return builder.call_te(compute, call.args[0], primfunc_name_hint=hint)

    return legalize


def customized_legalizations() -> dict[str, Any]:
    """Op name -> legalization function, for `relax.transform.LegalizeOps`."""
    return {"relax.nn.softmax": legalize_softmax,
            "relax.exp": _float32_only("relax.exp", _exp_compute, "exp"),
            "relax.sigmoid": _float32_only("relax.sigmoid", _sigmoid_compute, "sigmoid"),
            "relax.erf": _float32_only("relax.erf", _erf_compute, "erf")}


def legalize_pass(extra: dict[str, Any] | None = None) -> Any:
    """Relax `LegalizeOps` with this module's functions and `extra` (op name -> function)."""
    return relax.transform.LegalizeOps(customize_legalize_map={**customized_legalizations(), **(extra or {})})
