"""Every side-by-side case in one run, printed as one Markdown table (what `make bench` prints).

    python bench/run_all.py [--quick] [--repeats 7] [--device cpu] [--dtype float32] [--only NAME]

Runs bench/bert.py (MLM training mini and small, encoder inference), bench/vit.py (training and
inference), bench/translation.py and bench/decode.py with their default sizes, one case after the other;
in every case nanofm and the reference alternate for --repeats rounds with a matrix-product probe, and the
table reports medians. MFU is against the float32 (or --dtype) matrix-product rate measured in the same
rounds; a ratio above 1 means nanofm is faster. The whole output is also recorded in
bench/results/run_all-<YYYYMMDD-HHMM>.txt (`recorded` in common.py).
"""

from __future__ import annotations

import sys
import time

import torch

import bert
import decode
import translation
import vit
from common import load_average, parse_args, recorded, run_cases, table

SCRIPTS = [bert, vit, translation, decode]
# --suite gpu (bench/gpu.sh): BERT-base MLM training and the ViT cases, at GPU batch sizes
GPU_SUITE = [(bert, ["--sizes", "base", "--classify-size", "none"]), (vit, ["--batch", "512"])]


def suite_arg(p) -> None:
    p.add_argument("--suite", default="cpu", choices=["cpu", "gpu"], help="gpu: what bench/gpu.sh runs")


def main() -> None:
    argv = sys.argv[1:]
    common = parse_args(__doc__.splitlines()[0], argv=argv, extra=suite_arg)
    with recorded("run_all" if common.suite == "cpu" else "run_all-gpu"):
        t0, results = time.perf_counter(), []
        suite = GPU_SUITE if common.suite == "gpu" else [(script, []) for script in SCRIPTS]
        for script, suite_argv in suite:
            args = parse_args(argv=argv + suite_argv, extra=lambda p, s=script: (s.add_args(p), suite_arg(p)))
            results += run_cases(script.cases(args), args)
        device = f"{common.device}" + (f", {torch.cuda.get_device_name(common.device)}" if common.device.type == "cuda" else "")
        print(f"\n{len(results)} cases on {device}, {str(common.dtype).removeprefix('torch.')}, median of {common.repeats} "
              f"alternated rounds, {time.perf_counter() - t0:.0f} s; load average at the end {load_average()}\n")
        print(table(results))


if __name__ == "__main__":
    main()
