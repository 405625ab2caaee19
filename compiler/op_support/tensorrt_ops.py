"""What TensorRT's ONNX parser imports, as data: TensorRT cannot be imported without a GPU, so the
`tensorrt` target's table is written down here, in mlc's own format, from NVIDIA's published facts.

Sources (facts only; restrictions paraphrased):
  * onnx/onnx-tensorrt, docs/operators.md, "Supported ONNX Operators", the version of the
    TensorRT 10.15 GA parser (branch release/10.15-GA; its docs/Changelog.md dates 10.15 GA
    2026-02-02). The stored copy this was read from carried no commit id. It is the newest
    operator matrix published in that file; TensorRT 11 release notes list changes against it.
  * TensorRT 11.x changes to the ONNX parser, from the release notes:
      11.0 GA (onnx/onnx-tensorrt PR #1054, NVIDIA/TensorRT v11.0): Swish operator added
      11.2 (NVIDIA/TensorRT v11.2, TensorRT 11.2.1 release notes): DFT (through a cuFFT plugin),
           GridSample on 5-D (3-D spatial) inputs
      11.5 GA (onnx/onnx-tensorrt release/11.5-GA): opset 25 (ONNX 1.22.0); Squeeze without axes
  * the parser's opset range: "opset 9 to opset 24" (operators.md of 10.15); 25 from 11.5.

`DESCRIBES` is the release the table answers for when no TensorRT is installed: 11.4, the newest
`tensorrt` on PyPI in the package index this was written against (11.4.0.106). Types use the IR's
short names; "FP8" of the matrix is f8e4m3fn, "FP4" f4e2m1.
"""

from __future__ import annotations

SOURCE = {
    "repository": "onnx/onnx-tensorrt",
    "file": "docs/operators.md",
    "ref": "release/10.15-GA (TensorRT 10.15 GA, 2026-02-02)",
    "commit": "unknown (the stored copy carried none)",
    "tensorrt": "10.15 matrix + 11.0-11.5 parser release notes",
}
DESCRIBES = (11, 4)
OPSET_MIN, OPSET_MAX = 9, 24
OPSET_25_FROM = (11, 5)

# element types of the matrix's "Supported Types" column (of the op's data input)
_F = "f32 f16 bf16"
_FI = _F + " i32 i64"
_FIB = _FI + " bool"
_H = "f32 f16"

_AXES_CONST = "axes must be a build-time constant (an initializer)"
_BIDIR = "a bidirectional layer needs the same activations in both directions"
_SEED = "the seed is ignored"
_POOL = "2-D or 3-D pooling only; dilations empty or all 1"

# op -> (element types, restriction in our words; "" none stated)
SUPPORTED: dict[str, tuple[str, str]] = {
    "Abs": (_FI, ""), "Acos": (_F, ""), "Acosh": (_F, ""), "Add": (_FI, ""), "And": ("bool", ""),
    "ArgMax": (_FI, ""), "ArgMin": (_FI, ""), "Asin": (_F, ""), "Asinh": (_F, ""), "Atan": (_F, ""),
    "Atanh": (_F, ""),
    "Attention": (_F + " i8 f8e4m3fn",
                  "Q, K, V and attn_mask 4-D; no past_key/past_value/nonpad_kv_seqlen inputs; no present_key/"
                  "present_value/qk_matmul_output outputs; no qk_matmul_output_mode or softcap; head counts "
                  "from dim 1 of Q and K/V"),
    "AveragePool": (_F, _POOL), "BatchNormalization": (_F, ""), "BlackmanWindow": (_H, ""),
    "Cast": (_FIB + " u8", ""), "CastLike": (_FIB + " u8", ""), "Ceil": (_F, ""), "Celu": (_F, ""),
    "Clip": (_F, ""), "Concat": (_FIB, ""),
    "Constant": (_F + " f8e4m3fn f4e2m1 i4 i32 i64 bool", "no sparse_value, value_string or value_strings"),
    "ConstantOfShape": (_F + " f8e4m3fn f4e2m1 i4 i32 i64 bool", ""),
    "Conv": (_F, ""), "ConvTranspose": (_F, ""), "Cos": (_F, ""), "Cosh": (_F, ""),
    "CumSum": (_F, "axis must be a build-time constant"),
    "DeformConv": (_H, "1-D or 2-D spatial input; equal begin and end pads on each spatial axis"),
    "DepthToSpace": (_FI, ""),
    "DequantizeLinear": ("i8 f8e4m3fn f4e2m1 i4", "x_zero_point must be 0"),
    "Div": (_FI, ""), "Dropout": (_F, "is_training must be an initializer holding false"),
    "Einsum": (_F, ""), "Elu": (_F, ""), "Equal": (_FI, ""), "Erf": (_F, ""), "Exp": (_F, ""),
    "Expand": (_FIB, ""), "EyeLike": (_FIB, "static input dims"), "Flatten": (_FIB, ""), "Floor": (_F, ""),
    "Gather": (_FIB, ""), "GatherElements": (_FIB, ""), "GatherND": (_FIB, ""),
    "Gelu": (_F + " i8 i32 i64", ""), "Gemm": (_F, ""),
    "GlobalAveragePool": (_F, ""), "GlobalLpPool": (_F, ""), "GlobalMaxPool": (_F, ""),
    "Greater": (_FI, ""), "GreaterOrEqual": (_FI, ""),
    "GridSample": (_H, "4-D input (5-D from TensorRT 11.2)"), "GroupNormalization": (_F, ""),
    "GRU": (_F, _BIDIR), "HammingWindow": (_H, ""), "HannWindow": (_H, ""),
    "HardSigmoid": (_F, ""), "HardSwish": (_F, ""), "Hardmax": (_F, "the axis dim must be a build-time constant"),
    "Identity": (_FIB, ""), "If": (_FIB, "both branches' outputs of the same rank, with distinct names"),
    "ImageScaler": (_F, ""), "InstanceNormalization": (_F, ""), "IsInf": (_F, ""), "IsNaN": (_FI, ""),
    "LayerNormalization": (_F, "only output Y"), "LeakyRelu": (_F, ""), "Less": (_FI, ""),
    "LessOrEqual": (_FI, ""), "Log": (_F, ""), "LogSoftmax": (_F, ""),
    "Loop": (_FIB, "scan outputs of static length; loop-carried values keep their shape across iterations"),
    "LRN": (_F, ""), "LSTM": (_F, _BIDIR + "; input_forget 0; layout 0"), "LpNormalization": (_F, ""),
    "LpPool": (_F, "dilations empty or all 1"), "MatMul": (_F, ""), "Max": (_FI, ""),
    "MaxPool": (_F, _POOL + "; no Indices output"), "Mean": (_F + " f8e4m3fn i32 i64", ""),
    "MeanVarianceNormalization": (_F, ""), "Min": (_FI, ""), "Mish": (_H, ""), "Mod": (_FI, ""),
    "Mul": (_FI, ""), "Neg": (_FI, ""), "NonMaxSuppression": (_H, ""), "NonZero": (_H, ""),
    "Not": ("bool", ""), "OneHot": (_FIB, "depth must be a build-time constant"), "Or": ("bool", ""),
    "Pad": (_FI, ""), "ParametricSoftplus": (_F, ""), "Pow": (_FI, ""), "PRelu": (_F, ""),
    "QuantizeLinear": (_F, "y_zero_point must be 0"),
    "RandomNormal": (_F, _SEED), "RandomNormalLike": (_F, _SEED), "RandomUniform": (_F, _SEED),
    "RandomUniformLike": (_F, _SEED), "Range": (_FI, ""), "Reciprocal": (_F, ""),
    **{op: (_FI, _AXES_CONST) for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                          "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
    "Relu": (_FI, ""), "Reshape": (_FIB, ""),
    "Resize": (_F, "coordinate_transformation_mode half_pixel, pytorch_half_pixel, tf_half_pixel_for_nn, "
                   "asymmetric or align_corners; mode nearest or linear; nearest_mode floor, ceil, "
                   "round_prefer_floor or round_prefer_ceil; keep_aspect_ratio_policy stretch; no antialias; "
                   "tensor scales need axes 0..rank-1"),
    "ReverseSequence": (_FIB, ""), "RMSNormalization": (_F, ""), "RNN": (_F, _BIDIR), "RoiAlign": (_H, ""),
    "RotaryEmbedding": (_F, "position_ids must be i64"), "Round": (_F, ""),
    "STFT": ("f32", "frame_step and window must be initializers; real input only"), "ScaledTanh": (_F, ""),
    "Scan": (_F, ""), "Scatter": (_FI, ""), "ScatterElements": (_FI, ""),
    "ScatterND": (_FI, "reduction none only"), "Selu": (_F, ""), "Shape": (_FIB, ""), "Shrink": (_FI, ""),
    "Sigmoid": (_F, ""), "Sign": (_FI, ""), "Sin": (_F, ""), "Sinh": (_F, ""), "Size": (_FIB, ""),
    "Slice": (_FIB, ""), "Softmax": (_F, ""), "Softplus": (_F, ""), "Softsign": (_F, ""),
    "SpaceToDepth": (_FI, ""), "Split": (_FIB, ""), "Sqrt": (_F, ""),
    "Squeeze": (_FIB, "axes must resolve to a constant (may be omitted from TensorRT 11.5)"),
    "Sub": (_FI, ""), "Sum": (_FI, ""), "Tan": (_F, ""), "Tanh": (_F, ""),
    "TensorScatter": (_F + " i32", "past_cache and update 4-D; axis -2"), "ThresholdedRelu": (_F, ""),
    "Tile": (_FIB, ""), "TopK": (_FI, "sorted must be 1; K below 3840"), "Transpose": (_FIB, ""),
    "Trilu": (_FIB, ""), "Unsqueeze": (_FIB, "axes must resolve to a constant"), "Upsample": (_F, ""),
    "Where": (_FIB, ""), "Xor": ("bool", ""),
}

# op -> what the matrix adds, if anything
UNSUPPORTED: dict[str, str] = {
    **{op: "" for op in (
        "AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "Col2Im",
        "CenterCropPad", "Compress", "ConcatFromSequence", "ConvInteger", "Det", "ImageDecoder", "MatMulInteger",
        "MaxRoiPool", "MaxUnpool", "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional",
        "OptionalGetElement", "OptionalHasElement", "QLinearConv", "QLinearMatMul", "RegexFullMatch",
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength",
        "SequenceMap", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat", "StringNormalizer",
        "StringSplit", "TfIdfVectorizer", "Unique")},
    "DynamicQuantizeLinear": "TensorRT's dynamic quantization can be written as a model-local function of ONNX ops",
}

# op -> (TensorRT release that added it, element types ("" not stated), restriction)
ADDED_SINCE: dict[str, tuple[tuple[int, int], str, str]] = {
    "Swish": ((11, 0), "", ""),
    "DFT": ((11, 2), "", "through TensorRT's cuFFT plugin"),
}
