"""Pretraining at scale, measured on this machine: tokenizing into shards, training from shards, and a paper
estimate of BETO's pretraining on GPUs.

1. Tokenization: MB of text per second and peak memory (the process's peak RSS) of `nanofm data tokenize`
   (the tokenizers library's batch API, all cores) against a plain single-process loop over the same tokenizer
   (`tok.encode(doc)` one document at a time), for 10 MB, 100 MB and 1 GB of Spanish text. The text is the
   Debian corpus (data/corpus-es/train.txt, `make data-corpus`) repeated, each copy's documents opened by a
   marker line ("copia 12.") so that no two copies are the same text; each measurement is a process of its own.
2. Pretraining from shards against in memory (the demo's 2-layer bert-mini, batch 16) on the same 10 MB corpus:
   median seconds per step over the same steps, and the peak anonymous memory (RssAnon of /proc/self/status,
   sampled every 50 ms: the memory-mapped shards' pages are the page cache's, not the process's); from shards
   also on 1 GB, in memory also on 100 MB.
3. A paper estimate: the FLOPs of one BERT-base MLM step (FlopCounterMode on the CPU), and from them, at a
   stated MFU, the GPU-hours of BERT's schedule (1M steps of 256 x 512 tokens, ~40 epochs of 3.3B words) on 1,
   8 and 64 H100s; the all-reduce volume a step sends, and the token rate a GPU needs from its shards.

    python bench/scale.py [--sizes 10,100,1000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

from common import REPO, recorded

CORPUS = REPO / "data" / "corpus-es"
WORK = Path(os.environ.get("NANOFM_SCALE_DIR", "/tmp/nanofm-scale"))


def make_text(mb: int) -> Path:
    """At least `mb` MB of text: train.txt repeated, each copy's documents opened by "copia K."."""
    path = WORK / f"text-{mb}mb.txt"
    if path.exists():
        return path
    docs = [d.strip() for d in (CORPUS / "train.txt").read_text().split("\n\n") if d.strip()]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        written, k = 0, 0
        while written < mb * 1_000_000:
            doc = f"copia {k // len(docs)}.\n{docs[k % len(docs)]}\n\n"
            f.write(doc)
            written += len(doc.encode())
            k += 1
    tmp.rename(path)
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tokenize_sharded(text: str, out: str, q) -> None:
    from nanofm.data.shards import tokenize_to_shards

    t = time.perf_counter()
    m = tokenize_to_shards([text], CORPUS / "tokenizer.json", out, log=lambda s: None)
    q.put({"seconds": time.perf_counter() - t, "tokens": m["tokens"], "peak_rss_mb": _peak_rss_mb()})


def _tokenize_loop(text: str, q) -> None:
    from nanofm.data.shards import input_files, iter_documents
    from nanofm.text.wordpiece import WordPieceTokenizer

    tok = WordPieceTokenizer.load(CORPUS / "tokenizer.json")
    t, n = time.perf_counter(), 0
    for doc in iter_documents(input_files([text])):
        n += len(tok.hf.encode(doc, add_special_tokens=False).ids) + 1
    q.put({"seconds": time.perf_counter() - t, "tokens": n, "peak_rss_mb": _peak_rss_mb()})


def in_process(fn, *args) -> dict:
    q = multiprocessing.get_context("spawn").Queue()
    p = multiprocessing.get_context("spawn").Process(target=fn, args=(*args, q))
    p.start()
    result = q.get()
    p.join()
    return result


def _rss_anon_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pretrain(source: str, steps: int, q) -> None:
    """Train the demo's BERT for `steps` steps from shards (a folder) or a text file's blocks in memory."""
    from nanofm.engine import Trainer
    from nanofm.experiments.demo_plan import DEMO
    from nanofm.tasks import build_task, load_task_config

    peak = [_rss_anon_mb()]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], _rss_anon_mb())

    threading.Thread(target=sample, daemon=True).start()
    folder = WORK / f"corpus-{Path(source).stem}"
    if source.endswith(".txt"):  # in memory: a corpus folder around the text, the Debian valid.txt held out
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("valid.txt", "tokenizer.json"):
            if not (folder / name).exists():
                (folder / name).symlink_to(CORPUS / name)
        if not (folder / "train.txt").exists():
            (folder / "train.txt").symlink_to(source)
        data = [f"data.dir={folder}"]
    else:
        data = [f"data.shards={source}", f"data.dir={CORPUS}"]
    cfg = load_task_config("configs/bert-mini-mlm-es.yaml", [
        *DEMO["mlm"], *data, f"train.steps={steps}", "train.eval_every=0", "train.save_every=0", "train.log_every=1",
        "data.eval_blocks=50", "train.warmup_steps=10"])
    t0 = time.perf_counter()
    parts = build_task(cfg)
    build = time.perf_counter() - t0
    times = []

    class Timed(Trainer):
        def _optimizer_step(self):
            out = super()._optimizer_step()
            times.append(time.perf_counter())
            return out

    trainer = Timed(parts.model, parts.train_data, cfg.train, collate=parts.collate, progress=False)
    times.append(time.perf_counter())
    trainer.fit()
    stop.set()
    steps_s = [b - a for a, b in zip(times, times[1:])][5:]  # past the first steps (precision probe, warm caches)
    q.put({"build_seconds": build, "median_step_s": statistics.median(steps_s), "steps": len(steps_s),
           "peak_rss_anon_mb": max(peak[0], _rss_anon_mb()), "blocks": len(parts.train_data)})


def step_flops(seq: int, batch: int = 2) -> float:
    """FLOPs of one BERT-base MLM training step (forward and backward) per sequence of `seq` tokens."""
    import torch

    from common import count_flops
    from nanofm.families.bert.model import BertConfig, BertForMaskedLM
    from nanofm.core.output import IGNORE_INDEX

    model = BertForMaskedLM(BertConfig(vocab_size=31002, dropout=0.0, attn_dropout=0.0))
    tokens = torch.randint(5, 31002, (batch, seq))
    targets = torch.full_like(tokens, IGNORE_INDEX)
    targets[:, ::7] = tokens[:, ::7]  # ~15% of positions predicted

    def step():
        model(tokens, targets=targets).loss.backward()

    return count_flops(step) / batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000", help="MB of text to tokenize (default 10,100,1000)")
    p.add_argument("--steps", type=int, default=60, help="pretraining steps a measurement (default 60)")
    p.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation assumed on H100s (default 0.4)")
    p.add_argument("--quick", action="store_true", help="1 MB, 10 steps (a smoke test)")
    args = p.parse_args()
    sizes = [1] if args.quick else [int(s) for s in args.sizes.split(",")]
    steps = 10 if args.quick else args.steps
    WORK.mkdir(parents=True, exist_ok=True)
    with recorded("scale"):
        print(f"cores: {os.cpu_count()}; corpus: {CORPUS / 'train.txt'} repeated; work folder {WORK}\n")
        print("## Tokenization\n")
        print("| text | tokens | shards: MB/s | shards: peak RSS | plain loop: MB/s | plain loop: peak RSS | speed-up |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        shards = {}
        for mb in sizes:
            text = make_text(mb)
            size = text.stat().st_size / 1e6
            out = WORK / f"shards-{mb}mb" / "train"
            if out.exists():
                shutil.rmtree(out)
            a = in_process(_tokenize_sharded, str(text), str(out))
            b = in_process(_tokenize_loop, str(text))
            assert a["tokens"] == b["tokens"], (a, b)  # the same tokens either way
            shards[mb] = out
            print(f"| {size:,.0f} MB | {a['tokens']:,} | {size / a['seconds']:.2f} | {a['peak_rss_mb']:,.0f} MB | "
                  f"{size / b['seconds']:.2f} | {b['peak_rss_mb']:,.0f} MB | {b['seconds'] / a['seconds']:.2f}x |", flush=True)
        print("\n## Pretraining: from shards against in memory (the demo's BERT, batch 16)\n")
        print("| corpus | data | blocks | set-up s | median s/step | peak RssAnon |")
        print("|---:|---|---:|---:|---:|---:|")
        runs = [(sizes[0], "memory"), (sizes[0], "shards"), (sizes[0], "memory"), (sizes[0], "shards")]
        runs += [(mb, "shards") for mb in sizes[1:]] + [(mb, "memory") for mb in sizes[1:2]]
        for mb, kind in runs:
            source = str(make_text(mb)) if kind == "memory" else str(shards[mb].parent)
            r = in_process(_pretrain, source, steps)
            print(f"| {mb:,} MB | {kind} | {r['blocks']:,} | {r['build_seconds']:.1f} | {r['median_step_s']:.4f} | "
                  f"{r['peak_rss_anon_mb']:,.0f} MB |", flush=True)
        print("\n## Paper estimate: BERT-base (BETO's size) on H100s\n")
        f128, f512 = step_flops(128), step_flops(512)
        params = 110e6
        peak = 989e12  # H100 SXM dense bf16 FLOP/s (NVIDIA's datasheet)
        seqs = 1_000_000 * 256  # BERT's schedule: 1M steps of 256 sequences, 90% at 128 tokens, 10% at 512
        total = seqs * (0.9 * f128 + 0.1 * f512)
        print(f"measured FLOPs per sequence, one training step: {f128:.3e} at 128 tokens, {f512:.3e} at 512 tokens")
        print(f"BERT's schedule: {total:.3e} FLOPs; at {args.mfu:.0%} MFU of {peak:.3g} FLOP/s per H100:")
        for gpus in (1, 8, 64):
            hours = total / (gpus * peak * args.mfu) / 3600
            print(f"  {gpus:>2} GPUs: {hours:,.1f} h wall, {hours * gpus:,.0f} GPU-hours")
        grad_bytes = params * 4
        step_s_8 = 256 * (0.9 * f128 + 0.1 * f512) / (8 * peak * args.mfu)
        print(f"all-reduce per step (DDP, fp32 gradients): {grad_bytes / 1e6:.0f} MB per GPU, each way ~2(N-1)/N of it; "
              f"at 8 GPUs a step of 256 sequences takes {step_s_8 * 1e3:.0f} ms of compute, so the all-reduce needs "
              f"~{2 * grad_bytes / step_s_8 / 1e9:.0f} GB/s to hide behind it (NVLink: ~450 GB/s; 100 Gb/s Ethernet: 12.5)")
        tokens_per_s = 128 * peak * args.mfu / f128
        print(f"data: one GPU consumes ~{tokens_per_s:,.0f} tokens/s at 128 tokens a sequence "
              f"({tokens_per_s * 2 / 1e6:.1f} MB/s of uint16 shards)")
        print(json.dumps({"step_flops_128": f128, "step_flops_512": f512, "mfu": args.mfu}))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
