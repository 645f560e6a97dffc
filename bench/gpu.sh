#!/usr/bin/env bash
# On a machine with a GPU (at most 9 minutes): BERT-base masked-LM training in bfloat16 and the ViT cases,
# nanofm vs transformers in one run, MFU against the GPU's bf16 matrix-product rate measured in the same run;
# then the GPU pretraining recipe (configs/bert-base-mlm-es-gpu.yaml, from shards of data/corpus-es) timed.
#   bash bench/gpu.sh                 # CUDA, bfloat16 autocast on both sides
#   bash bench/gpu.sh --device cpu --quick   # the same scripts, tiny, on the CPU (a smoke test)
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-../.venv/bin/python}"
timeout 300 "$PY" run_all.py --suite gpu --device cuda --dtype bfloat16 --repeats 10 "$@"
recipe=()  # --device and --quick also go to the recipe's timing
while [ $# -gt 0 ]; do
  case "$1" in --device) recipe+=(--device "$2"); shift 2 ;; --quick) recipe+=(--quick); shift ;; *) shift ;; esac
done
if [ -f ../data/corpus-es/train.txt ]; then
  timeout 240 "$PY" gpu_pretrain.py "${recipe[@]}"
else
  echo "data/corpus-es is missing (make data-corpus, then carry it to this machine): the GPU recipe is not timed"
fi
