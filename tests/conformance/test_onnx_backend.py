"""A fixed, representative slice of the official ONNX backend tests, run through onnx's own
`BackendTest` with mlc's onnxruntime target (import → -O2 → artifact → run).

The full suite (2,033 cases) runs with the harness in ../shared/conformance (see README); this
slice covers each family: elementwise, convolution and pooling, shape manipulation, reductions,
control flow, sequences, quantization, transformer ops, and whole models from the
pytorch-converted, pytorch-operator and simple suites. (onnx's in-memory cases stamp opset 28 on
some ops, which onnxruntime 1.31 refuses: those are left to the full harness run, which counts
them against plain onnxruntime.)
"""

from __future__ import annotations

import onnx.backend.test

from mlc.conformance import OnnxRuntimeBackend

SLICE = [
    # elementwise and broadcasting
    "test_abs", "test_add_bcast", "test_relu", "test_sigmoid", "test_pow", "test_where_example", "test_clip",
    # convolution, pooling, normalization, matrix products
    "test_basic_conv_with_padding", "test_conv_with_strides_padding", "test_convtranspose", "test_maxpool_2d_default",
    "test_averagepool_2d_pads", "test_batchnorm_example", "test_gemm_default_no_bias", "test_matmul_2d",
    "test_instancenorm_example", "test_layer_normalization_2d_axis0", "test_lrn",
    # shapes
    "test_reshape_reduced_dims", "test_transpose_default", "test_concat_1d_axis_0", "test_slice",
    "test_gather_0", "test_squeeze", "test_unsqueeze_axis_0", "test_expand_dim_changed", "test_shape",
    "test_split_equal_parts_1d_opset18", "test_pad", "test_resize_upsample_scales_nearest", "test_tile",
    # reductions, sorting
    "test_reduce_sum_default_axes_keepdims_example", "test_reduce_mean_keepdims_example", "test_softmax_axis_0",
    "test_argmax_default_axis_example", "test_top_k", "test_cumsum_1d",
    # control flow, sequences
    "test_if", "test_loop11", "test_scan9_sum", "test_sequence_insert_at_back", "test_sequence_map_identity_1_sequence",
    # quantization
    "test_qlinearmatmul_2D_uint8_float32",
    # transformer building blocks, function-expanded variants
    "test_gelu_default_1", "test_softmax_example_expanded", "test_gelu_tanh_1_expanded",
    # whole models
    "test_operator_conv", "test_operator_maxpool", "test_Conv2d", "test_Embedding",
    "test_single_relu_model", "test_sequence_model1",
]

backend_test = onnx.backend.test.BackendTest(OnnxRuntimeBackend, __name__)
for name in SLICE:
    backend_test.include(f"^{name}_cpu$")
globals().update(backend_test.test_cases)
