"""Build models/digits_cnn.onnx and models/digits_cnn.data.npz: a small residual CNN trained on scikit-learn's digits.

Why this model: int8 quantization is judged by accuracy on real data, and the quantizer's placement
matters only where the graph has the ops between quantized ops (Relu, MaxPool, a residual Add,
Flatten) that onnxruntime and TensorRT want kept in the int8 domain. The data ships inside
scikit-learn (1,797 8x8 grey images of handwritten digits), so model, calibration set and test set
need no download. Training is seeded, deterministic and on the CPU (a few seconds):

    pip install -e '.[test,models]'
    python models/make_digits_cnn.py          # prints the fp32 test accuracy

Graph (TorchScript exporter, opset 17, ir_version 8, dynamic batch):

    image f32[N,1,8,8] in [0,1]
      -> Conv(1->16, 3x3) -> Relu = h                           stem
      -> Conv(16->16) -> Relu -> Conv(16->16) -> Add(h) -> Relu  residual block
      -> MaxPool(2) -> Conv(16->32) -> Relu -> MaxPool(2)        [N,32,2,2]
      -> Flatten -> Gemm(128->10) = logits f32[N,10]

Data file `digits_cnn.data.npz` (np.savez_compressed; about 20 KB, committed):

    calibration   uint8[200,1,8,8]   grey levels 0..16 (as load_digits gives them)
    test          uint8[T,1,8,8]     grey levels 0..16
    test_labels   uint8[T]           digit 0..9
    train_size    int64 scalar       how many images trained the model (the rest of the 1,797)

Two files keyed by the model's input name, for the CLI as it is (`--calibration-data`,
`--eval-data`), from the same splits:

    digits_cnn.calibration.npz   image f32[200,1,8,8]
    digits_cnn.eval.npz          image f32[T,1,8,8], labels int64[T]   (top-1 for --accuracy-budget)

Pixels are stored as the integer grey levels 0..16 to keep the file small; the model's input is
`levels.astype(np.float32) / 16` (exact in float32: `load_pixels` does it). Splits: a stratified
test split of 600 images, then a stratified calibration split of 200 from the rest, the remaining
997 train; both with `random_state=SEED`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
TEST_SIZE = 600
CALIBRATION_SIZE = 200
LEVELS = 16.0  # load_digits grey levels are integers 0..16
OPSET = 17
IR_VERSION = 8
PRODUCER = "models/make_digits_cnn.py"
EPOCHS = 40
BATCH = 32


def load_pixels(levels: np.ndarray) -> np.ndarray:
    """The model's input from stored grey levels: float32 in [0,1], exact (k/16)."""
    return np.asarray(levels).astype(np.float32) / np.float32(LEVELS)


def splits() -> dict[str, np.ndarray]:
    """Stratified, seeded train / calibration / test splits of load_digits as uint8 grey levels [N,1,8,8]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.uint8)[:, None, :, :]  # values 0..16 exactly
    labels = digits.target.astype(np.uint8)
    rest_x, test_x, rest_y, test_y = train_test_split(
        images, labels, test_size=TEST_SIZE, random_state=SEED, stratify=labels)
    train_x, cal_x, train_y, _cal_y = train_test_split(
        rest_x, rest_y, test_size=CALIBRATION_SIZE, random_state=SEED, stratify=rest_y)
    return {"train": train_x, "train_labels": train_y, "calibration": cal_x, "test": test_x, "test_labels": test_y}


def build_net():  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    class DigitsCNN(nn.Module):
        """Stem conv, one residual block, two max-pools, a linear head."""

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(1, 16, 3, padding=1)
            self.conv_a = nn.Conv2d(16, 16, 3, padding=1)
            self.conv_b = nn.Conv2d(16, 16, 3, padding=1)
            self.conv_c = nn.Conv2d(16, 32, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Linear(32 * 2 * 2, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.stem(x))
            r = self.conv_b(torch.relu(self.conv_a(h)))
            x = self.pool(torch.relu(r + h))
            x = self.pool(torch.relu(self.conv_c(x)))
            return self.head(torch.flatten(x, 1))

    return DigitsCNN()


def train(data: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    """Adam, cross-entropy, seeded shuffles; deterministic kernels on one thread."""
    import torch

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    net = build_net()
    x = torch.from_numpy(load_pixels(data["train"]))
    y = torch.from_numpy(data["train_labels"].astype(np.int64))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS)
    generator = torch.Generator().manual_seed(SEED)
    net.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        schedule.step()
    net.eval()
    return net


def export(net, path: Path, accuracy: float) -> None:  # type: ignore[no-untyped-def]
    """TorchScript exporter (plain Conv/Relu/Add/MaxPool/Flatten/Gemm), then ir_version 8 and our metadata."""
    import onnx
    import torch
    from onnx import helper

    dummy = torch.zeros(1, 1, 8, 8)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(net, (dummy,), str(tmp), input_names=["image"], output_names=["logits"],
                      opset_version=OPSET, dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True, dynamo=False)
    model = onnx.load(str(tmp))
    tmp.unlink()
    model.ir_version = IR_VERSION
    model.producer_name = PRODUCER
    model.producer_version = "1"
    model.doc_string = "Residual CNN trained on scikit-learn's digits (models/make_digits_cnn.py)."
    del model.metadata_props[:]
    helper.set_model_props(model, {"test_accuracy": f"{accuracy:.4f}", "dataset": "sklearn.datasets.load_digits",
                                   "input": "grey levels / 16, f32[N,1,8,8]"})
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def ort_accuracy(path: Path, data: dict[str, np.ndarray]) -> float:
    """Top-1 accuracy of the exported file under onnxruntime (what the test checks)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"image": load_pixels(data["test"])})[0]
    return float(np.mean(logits.argmax(axis=1) == data["test_labels"]))


def write_cli_files(data: dict[str, np.ndarray], model: Path) -> None:
    """The calibration and evaluation splits keyed by the model's input name (and `labels`)."""
    stem = model.name.removesuffix(".onnx")
    np.savez_compressed(model.with_name(stem + ".calibration.npz"), image=load_pixels(data["calibration"]))
    np.savez_compressed(model.with_name(stem + ".eval.npz"), image=load_pixels(data["test"]),
                        labels=data["test_labels"].astype(np.int64))


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "digits_cnn.onnx")
    args = parser.parse_args()
    data = splits()
    net = train(data)
    with torch.no_grad():
        logits = net(torch.from_numpy(load_pixels(data["test"]))).numpy()
    torch_accuracy = float(np.mean(logits.argmax(axis=1) == data["test_labels"]))
    export(net, args.out, torch_accuracy)
    accuracy = ort_accuracy(args.out, data)
    data_path = args.out.with_name(args.out.name.removesuffix(".onnx") + ".data.npz")
    np.savez_compressed(data_path, calibration=data["calibration"], test=data["test"],
                        test_labels=data["test_labels"], train_size=np.int64(len(data["train"])))
    write_cli_files(data, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) and {data_path} ({data_path.stat().st_size} bytes)")
    print(f"train {len(data['train'])}, calibration {len(data['calibration'])}, test {len(data['test'])}")
    print(f"fp32 test accuracy: torch {torch_accuracy:.4f}, onnxruntime {accuracy:.4f}")


if __name__ == "__main__":
    main()
