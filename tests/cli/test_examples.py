"""The README's quick start and every example in every `--help` run as written, on the bundled
model, from a scratch folder that holds a copy of `models/` (tests never write into the checkout).

The quick start's install steps (`python3.11 -m venv`, `pip install -e .`) are what CI's own
`.ci/run` does before this test can run at all; its `mlc` steps run here, in order.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from mlc.cli import EXAMPLES, build_parser, main
from tests.cli.helpers import ROOT, bundled

ORDER = ["compile", "optimize", "run", "inspect", "debug", "passes", "targets", "bench", "tune"]  # run needs compile's


def quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)\n```", readme, re.S)
    assert block is not None, "the README starts with a shell block"
    steps = [step.strip() for step in block.group(1).split("&&")]
    assert any(s.startswith("pip install") for s in steps), steps
    return [step for step in steps if step.startswith("mlc ")]


def help_examples() -> list[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    found: dict[str, list[str]] = {}
    for name, sub in commands.items():
        text = sub.description or ""
        assert "examples:" in text, f"mlc {name} --help shows examples"
        found[name] = [line.strip() for line in text.split("examples:", 1)[1].splitlines()
                       if line.strip().startswith("mlc ")]
    assert found == EXAMPLES, "the help shows exactly the tested examples"
    assert set(found) == set(ORDER)
    return [example for name in ORDER for example in found[name]]


def _run(command: str, capfd: pytest.CaptureFixture[str]) -> None:
    args = shlex.split(command)
    assert args[0] == "mlc"
    code = main(args[1:])
    out, err = capfd.readouterr()
    assert code == 0, f"`{command}` exited {code}: {err}"
    assert "error" not in err, f"`{command}`: {err}"


def test_quick_start_runs_as_written(capfd, tmp_path, monkeypatch) -> None:
    bundled(tmp_path)
    monkeypatch.chdir(tmp_path)
    steps = quick_start()
    assert steps and steps[0].startswith("mlc compile")
    for step in steps:
        _run(step, capfd)


def test_every_help_example_runs_as_written(capfd, tmp_path, monkeypatch) -> None:
    pytest.importorskip("tvm", reason="some examples use --target llvm (pip install 'mlc[tvm]')")
    bundled(tmp_path)
    monkeypatch.chdir(tmp_path)
    examples = help_examples()
    assert len(examples) >= 16
    for example in examples:
        _run(example, capfd)
    assert (Path(tmp_path) / "digits.ort" / "manifest.json").is_file()


def test_the_readme_python_example_runs(tmp_path, monkeypatch) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(import numpy as np\nimport mlc\n.*?)\n```", readme, re.S)
    assert block is not None, "the README shows the Python API"
    bundled(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})  # its own assert checks the results
    assert (tmp_path / "digits.ort" / "manifest.json").is_file() and (tmp_path / "digits8.onnx").is_file()
