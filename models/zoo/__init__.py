"""The model zoo: small, structurally real models exported by both of torch's ONNX exporters.

`python -m models.zoo.build --out DIR` (or `python models/zoo/build.py`) writes them into a cache
outside the repository (default `~/.cache/mlc-zoo/`); `benchmarks/bench_zoo.py` compiles and runs
them, and `tests/test_zoo_slice.py` checks a few in CI.
"""
