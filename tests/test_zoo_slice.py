"""A CI slice of the model zoo: small real models, both of torch's exporters, through `mlc compile` and `mlc run`.

The models come from `models/zoo/build.py` (seeded random weights, built into pytest's temporary folder
once per session, never into the checkout) with what the `test` extra installs: torch 2.13.0 and
transformers, no torchvision. Each is compiled for `onnxruntime` by the CLI with its own inputs
(`--inputs NAME.inputs.npz`), run by the CLI, and its outputs compared with torch's within
1e-4 + 1e-3 |ref|. Models mlc fails on today are `xfail(strict=True)` with the exact current error,
so the suite turns red (XPASS) when a fix lands: then drop the mark.

`benchmarks/bench_zoo.py` runs the whole zoo, both targets, by hand.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlc.cli import main

pytest.importorskip("torch", reason="the zoo slice exports models with torch (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parents[1]
ATOL, RTOL = 1e-4, 1e-3

# model -> needs transformers; (model, exporter) -> the exact current error, when mlc fails on it today
SLICE = {"bert": True, "gpt2": True, "lstm": False, "unet": False}
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def _load_builder() -> Any:
    name = "mlc_zoo_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "models" / "zoo" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Builds each slice model once per session (both exporters) into a temporary folder."""
    builder = _load_builder()
    folder = tmp_path_factory.mktemp("zoo")
    built: dict[str, dict] = {}

    def get(name: str) -> tuple[Path, dict]:
        if name not in built:
            built[name] = builder.build_entry(builder.BY_NAME[name], folder, quiet=True)
        return folder, built[name]

    return get


def _cases() -> list[Any]:
    cases = []
    for name in SLICE:
        for exporter in ("ts", "dynamo"):
            marks = []
            if (name, exporter) in KNOWN_FAILURES:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[name, exporter]))
            cases.append(pytest.param(name, exporter, id=f"{name}-{exporter}", marks=marks))
    return cases


@pytest.mark.parametrize(("name", "exporter"), _cases())
def test_zoo_model_compiles_and_matches_torch(zoo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              name: str, exporter: str) -> None:
    if SLICE[name]:
        pytest.importorskip("transformers", reason="the transformer models of the slice need transformers")
    folder, record = zoo(name)
    export = record["exports"][exporter]
    assert export["status"] == "ok", f"{name}-{exporter}: the export failed: {export.get('reason')}"
    model = folder / export["file"]
    inputs = folder / f"{name}.inputs.npz"
    artifact = tmp_path / f"{name}-{exporter}.ort"
    code = main(["compile", str(model), "--target", "onnxruntime", "-o", str(artifact), "--inputs", str(inputs),
                 "-q"])
    error = capsys.readouterr().err.strip()
    assert code == 0, error.splitlines()[-1] if error else f"exit {code}"
    outputs = tmp_path / "outputs.npz"
    code = main(["run", str(artifact), "--inputs", str(inputs), "--output", str(outputs), "-q"])
    error = capsys.readouterr().err.strip()
    assert code == 0, error.splitlines()[-1] if error else f"exit {code}"
    got = dict(np.load(outputs))
    reference = dict(np.load(folder / f"{name}.torch.npz"))
    assert set(reference) <= set(got), f"outputs {sorted(got)}, torch gave {sorted(reference)}"
    for key, ref in reference.items():
        assert got[key].shape == ref.shape, f"{key}: shape {got[key].shape}, torch {ref.shape}"
        excess = np.abs(got[key].astype(np.float64) - ref) / (ATOL + RTOL * np.abs(ref.astype(np.float64)))
        assert float(excess.max()) <= 1.0, f"{key}: max |got-ref| / (1e-4 + 1e-3 |ref|) = {excess.max():.3g}"
