"""A fuzz case: one generated ONNX model and the feeds it runs on, saved and loaded as a pair.

The feeds belong to the case, not to the model's input types: the generator knows which values
keep each op inside its domain (indices in range, integers far from overflow), and the minimizer
feeds a value it cut out of the graph with exactly what the original graph computed there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx  # noqa: TID251 - the fuzzer writes ONNX models: protobuf is its subject, not a border crossing


@dataclass
class Case:
    """A model, its feeds, and where it came from (`seed`, and what the generator put in it)."""

    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    seed: int | None = None
    features: list[str] = field(default_factory=list)
    expected_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # the generator's own account

    def model_bytes(self) -> bytes:
        return self.model.SerializeToString(deterministic=True)

    @property
    def node_count(self) -> int:
        return len(self.model.graph.node)

    def save(self, folder: Path, stem: str = "model") -> Path:
        """`folder/STEM.onnx` and `folder/STEM.npz` (the feeds); returns the model's path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.onnx"
        path.write_bytes(self.model_bytes())
        np.savez(folder / f"{stem}.npz", **self.feeds)  # type: ignore[arg-type]
        return path

    @staticmethod
    def load(model_path: Path) -> Case:
        """The case `save` wrote (the feeds from the .npz beside the model)."""
        model = onnx.load_model_from_string(Path(model_path).read_bytes())
        npz = Path(model_path).with_suffix(".npz")
        with np.load(npz) as data:
            feeds = {k: data[k] for k in data.files}
        return Case(model, feeds)
