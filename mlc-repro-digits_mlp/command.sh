#!/bin/sh
# replays the failure: exit code 1 and the same pass
cd /work/main/mlc-repro-digits_mlp && mlc debug before.onnx --passes 'perturb-weights{epsilon=0.05,op=Gemm}' --inputs inputs.npz --max-rewrites 1 --load /work/main/tests/perturb_pass.py
