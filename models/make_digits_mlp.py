"""Build models/digits_mlp.onnx: a small MLP trained on scikit-learn's bundled digits data set.

The data ships inside scikit-learn (1,797 8x8 images), so the model is real (trained, with a
measured accuracy) without any download. The script is deterministic: the same scikit-learn and
numpy give the same bytes. Run: `python models/make_digits_mlp.py` (needs the `test` extra).

Graph: pixels f32[N,64] (0..16 grey levels) -> Div(16) -> Gemm -> Relu -> Gemm -> Relu -> Gemm
-> Softmax -> probabilities f32[N,10], and ArgMax -> label i64[N].
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
OPSET = 17
IR_VERSION = 8


def train() -> tuple[MLPClassifier, float, np.ndarray]:
    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=400, random_state=0, tol=1e-5)
    clf.fit(x_train / 16.0, y_train)
    accuracy = float(clf.score(x_test / 16.0, y_test))
    return clf, accuracy, x_test[:16]


def to_onnx(clf: MLPClassifier, accuracy: float) -> onnx.ModelProto:
    nodes = [helper.make_node("Div", ["pixels", "scale"], ["x0"], name="normalize")]
    inits = [numpy_helper.from_array(np.array(16.0, dtype=np.float32), "scale")]
    current = "x0"
    layers = len(clf.coefs_)
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"fc{i}.weight"),
                  numpy_helper.from_array(b.astype(np.float32), f"fc{i}.bias")]
        out = f"fc{i}" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [current, f"fc{i}.weight", f"fc{i}.bias"], [out], name=f"fc{i}"))
        current = out
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [current], [f"a{i}"], name=f"relu{i}"))
            current = f"a{i}"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1, name="softmax"))
    nodes.append(helper.make_node("ArgMax", [current], ["label"], axis=1, keepdims=0, name="argmax"))
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="mlc-models", producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = "MLP 64-64-32-10 trained on scikit-learn's digits (models/make_digits_mlp.py)."
    helper.set_model_props(model, {"test_accuracy": f"{accuracy:.4f}", "dataset": "sklearn.datasets.load_digits"})
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "digits_mlp.onnx")
    args = parser.parse_args()
    clf, accuracy, sample = train()
    model = to_onnx(clf, accuracy)
    args.out.write_bytes(model.SerializeToString())
    np.savez(args.out.with_suffix(".sample.npz"), pixels=sample)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
