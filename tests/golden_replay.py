"""Golden replay: the IR mlc produces for fixed models, printed, against checked-in expectations.

Every change in what the compiler produces shows up as a diff of `tests/golden/*.txt` in review, so
that it is intended: a new fusion, a reordering, a renamed value. The cases are the bundled models
(`models/*.onnx`) and onnx's light model zoo (in the onnx wheel: AlexNet, DenseNet-121,
Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512), each through the portable
-O2 pipeline and the onnxruntime target's -O3. Large constants print as digests, so a changed
weight shows as a changed digest.

    python -m tests.golden_replay            # compare, list what differs (exit 1 if anything does)
    python -m tests.golden_replay --update   # rewrite tests/golden/ from this tree (review the diff!)
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
LIGHT = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"
PIPELINES = {"O2": ("O2", None), "O3-onnxruntime": ("O3", "onnxruntime")}


def models() -> dict[str, Path]:
    found = {p.stem: p for p in sorted((ROOT / "models").glob("*.onnx"))}
    found.update({p.stem: p for p in sorted(LIGHT.glob("light_*.onnx"))})
    return found


def cases() -> list[tuple[str, str]]:
    return [(model, pipeline) for model in models() for pipeline in PIPELINES]


def golden_path(model: str, pipeline: str) -> Path:
    return GOLDEN / f"{model}.{pipeline}.txt"


def render(model: str, pipeline: str) -> str:
    """The model after `pipeline`, in the text form."""
    from mlc.ir.printer import print_ir
    from mlc.onnx_io.importer import import_onnx
    from mlc.pass_manager import PassManager
    from mlc.pipelines import build_pipeline

    level, target = PIPELINES[pipeline]
    graph = import_onnx(models()[model])
    PassManager(build_pipeline(level, target=target)).run(graph)
    return print_ir(graph) + "\n"


def difference(model: str, pipeline: str, limit: int = 40) -> str | None:
    """None when the rendering matches its golden file, else the head of a unified diff."""
    path = golden_path(model, pipeline)
    got = render(model, pipeline)
    expected = path.read_text() if path.is_file() else ""
    if got == expected:
        return None
    diff = difflib.unified_diff(expected.splitlines(), got.splitlines(), str(path), "this tree", lineterm="", n=1)
    return "\n".join(list(diff)[:limit])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="golden replay of mlc's pipelines")
    parser.add_argument("--update", action="store_true", help="rewrite tests/golden/ from this tree")
    args = parser.parse_args(argv)
    differing = 0
    for model, pipeline in cases():
        if args.update:
            GOLDEN.mkdir(parents=True, exist_ok=True)
            golden_path(model, pipeline).write_text(render(model, pipeline))
            continue
        diff = difference(model, pipeline)
        if diff is not None:
            differing += 1
            print(diff)
    if not args.update:
        print(f"{differing} of {len(cases())} renderings differ from tests/golden/")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
