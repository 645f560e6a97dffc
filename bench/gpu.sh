#!/usr/bin/env bash
# On a machine with a GPU (at most 5 minutes): BERT-base masked-LM training in bfloat16 and the ViT cases,
# nanofm vs transformers in one run, MFU against the GPU's bf16 matrix-product rate measured in the same run.
#   bash bench/gpu.sh                 # CUDA, bfloat16 autocast on both sides
#   bash bench/gpu.sh --device cpu --quick   # the same scripts, tiny, on the CPU (a smoke test)
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-../.venv/bin/python}"
exec timeout 300 "$PY" run_all.py --suite gpu --device cuda --dtype bfloat16 --repeats 10 "$@"
