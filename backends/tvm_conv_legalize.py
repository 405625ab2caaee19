"""Legalizes channels-last 2-D convolutions whose output width is symbolic into whole column tiles.

Why: `tvm_sched_conv_nhwc` keeps a tile of up to 8 output columns x 2 channel vectors in
registers for the whole reduction. With a width known only at run time (exports with dynamic image
sizes) TOPI's convolution cannot be cut into whole tiles: the split puts a bounds test on every
multiply-add of the tile, the accumulators leave the registers, and the 3x3 convolutions of
ResNet-18 ran 3.3x slower than with the width fixed (4.5 against 1.4 ms for 64 channels at 56x56,
Intel Xeon AVX-512, 2026-12-05).

This legalization computes the convolution over a width rounded up to a multiple of the tile's
columns, `ceil(W / columns) * columns`, a multiple the schedule's arithmetic can prove, so the
tile needs no test. The extra columns repeat the last real one (its input index is clamped to
`W - 1`: every read stays inside the input, no padding buffer to grow) and a crop block copies the
real columns out. After fusion the crop is the first epilogue block: the schedule computes it at
the tile, so only the final stores carry the bounds test and the padded result never goes to
memory. The cost is at most `columns - 1` wasted columns per row (none when the width is a
multiple).

Taken: NHWC data, HWIO weights, NHWC output, a symbolic output width, dense or depthwise groups and
a multiple of 4 output channels (what the NHWC rule schedules); everything else goes to TVM's own
legalization unchanged.
"""

from __future__ import annotations

from typing import Any

from tvm import sym, te, tirx, topi
from tvm.relax.transform.legalize_ops.nn import _nn_conv2d

CROP_BLOCK = "conv2d_nhwc_crop"


def _takes(call: Any) -> bool:
    attrs = call.attrs
    if (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) != ("NHWC", "HWIO", "NHWC"):
        return False
    out_shape = getattr(call.ty, "shape", None)
    weight_shape = getattr(call.args[1].ty, "shape", None)
    if out_shape is None or weight_shape is None or len(out_shape) != 4 or len(weight_shape) != 4:
        return False
    if isinstance(out_shape[2], tirx.IntImm) or not all(isinstance(d, tirx.IntImm) for d in weight_shape):
        return False
    in_per_group, channels = int(weight_shape[2]), int(weight_shape[3])
    groups = int(attrs.groups)
    return channels % 4 == 0 and (groups == 1 or in_per_group == 1)


def conv2d_whole_tiles(columns: int) -> Any:
    """A `LegalizeOps` function for `relax.nn.conv2d`: whole tiles of `columns` output columns
    where the output width is symbolic (module doc), TVM's own legalization otherwise."""

    def legalize(builder: Any, call: Any) -> Any:
        if not _takes(call):
            return _nn_conv2d(builder, call)
        attrs = call.attrs
        stride_h, stride_w = (int(s) for s in attrs.strides)
        dilation_h, dilation_w = (int(d) for d in attrs.dilation)
        top, left, bottom, right = (int(p) for p in attrs.padding)
        groups = int(attrs.groups)
        out_dtype = str(attrs.out_dtype) if str(attrs.out_dtype) not in ("", "None", "void") else None

        def compute(data: te.Tensor, weight: te.Tensor) -> te.Tensor:
            batch, height, width, _ = data.shape
            kernel_h, kernel_w, in_per_group, channels = weight.shape
            analyzer = sym.Analyzer()
            out_h = analyzer.simplify((height + top + bottom - dilation_h * (kernel_h - 1) - 1) // stride_h + 1)
            out_w = analyzer.simplify((width + left + right - dilation_w * (kernel_w - 1) - 1) // stride_w + 1)
            tiled_w = analyzer.simplify(tirx.floordiv(out_w + columns - 1, columns) * columns)
            padded = (topi.nn.pad(data, [0, top, left, 0], [0, bottom, right, 0], name="pad_temp")
                      if top or left or bottom or right else data)
            ry = te.reduce_axis((0, kernel_h), "ry")
            rx = te.reduce_axis((0, kernel_w), "rx")
            rc = te.reduce_axis((0, in_per_group), "rc")
            dtype = out_dtype or data.dtype

            def channel(f: Any) -> Any:  # the input channel of output channel f's group, + rc
                return (f // (channels // groups)) * in_per_group + rc if groups > 1 else rc

            conv = te.compute(
                (batch, out_h, tiled_w, channels),
                lambda nn, yy, xx, ff: te.sum(  # TOPI's iterator names
                    padded[nn, yy * stride_h + ry * dilation_h,
                           tirx.min(xx, out_w - 1) * stride_w + rx * dilation_w, channel(ff)].astype(dtype)
                    * weight[ry, rx, rc, ff].astype(dtype),
                    axis=[ry, rx, rc]),
                name="conv2d_nhwc" if groups == 1 else "group_conv2d_nhwc")
            return te.compute((batch, out_h, out_w, channels), lambda n, y, x, f: conv[n, y, x, f], name=CROP_BLOCK)

        return builder.call_te(compute, call.args[0], call.args[1], primfunc_name_hint="conv2d")

    return legalize
