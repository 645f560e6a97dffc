"""`nanofm demo`: the lecture end to end at laptop scale, then a report.

Four parts, each through the same library functions the commands use (no demo-only training code):
  translation  the RNN with attention against the Transformer (`nanofm compare translation`)
  bert         Spanish BERT pretraining, fill-mask, the BETO-style table (`pretrain`, `fill-mask`, `benchmark beto`)
  vision       the ViT from scratch against MAE pretraining + fine-tuning (`benchmark vision`)
  t2i          CLIP, the diffusion prior and decoder, the verifier, the table and a grid (`benchmark t2i`, `generate`)

The budget is shared out as the demo goes: each part gets its share of the time still left, so a part
that overran leaves less to the next ones. A part's plan (its budget) and its result are kept in
OUT/demo.json: a rerun skips finished parts and resumes an interrupted one from its checkpoints with the
budget it was first given. Each finished part leaves OUT/PART/section.md; report.md and report.html
(self-contained) are written from those after every part.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nanofm.config import ConfigError
from nanofm.viz.report import clock

from .demo_parts import RUNNERS
from .demo_plan import PARTS, SHARES, TITLES, VERIFIER_BUDGET, Demo

# ---------------------------------------------------------------- data


def prepare_data(demo: Demo) -> None:
    """Prepare whatever the chosen parts need and is missing, with the same functions as `nanofm data prepare`."""
    needs = {"translation": ["translation"], "bert": ["corpus", "tasks"], "vision": ["fmnist"], "t2i": ["scenes", "fmnist"]}
    keys = list(dict.fromkeys(k for p in demo.only for k in needs[p]))
    marker = {"translation": "test.tsv", "corpus": "tokenizer.json", "tasks": "*/task.json", "fmnist": "meta.json",
              "scenes": "meta.json"}
    for key in keys:
        path = demo.dataset(key)
        if any(path.glob(marker[key])):
            continue
        print(f"[demo] preparing {path} (missing)", flush=True)
        if key == "translation":
            from nanofm.data.translation import prepare_translation

            prepare_translation("es-en", path)
        elif key == "corpus":
            from nanofm.data.corpus import SOURCES, prepare_corpus

            prepare_corpus(path, "es", SOURCES)
        elif key == "tasks":
            from nanofm.data.spanish_tasks import prepare_beto_tasks

            try:
                prepare_beto_tasks(path)
            except ImportError as e:
                raise ConfigError(f"{path} is missing and preparing it needs spaCy: run `make data-beto-tasks` "
                                  f"first ({e})") from None
        elif key == "fmnist":
            from nanofm.data.fashion_mnist import prepare_fashion_mnist

            prepare_fashion_mnist(path)
        else:
            from nanofm.data.scenes import prepare_scenes

            prepare_scenes(path)
    verifier = demo.verifier() if "t2i" in demo.only else None
    if verifier is not None and not (verifier / "checkpoints" / "best").exists():
        train_verifier(demo, verifier)


def train_verifier(demo: Demo, run: Path) -> None:
    """The text-to-image judge, trained once on real scenes before the budget starts (resumed if interrupted):
    a verifier trained inside a few minutes is right too rarely to measure fidelity with."""
    from nanofm.tasks import load_task_config
    from nanofm.tasks.benchmark_vision import train_run

    print(f"[demo] training the text-to-image verifier {run} ({VERIFIER_BUDGET}, once, before the budget)", flush=True)
    cfg = load_task_config(demo.config("verifier-scenes.yaml"),
                           [f"train.budget={VERIFIER_BUDGET}", f"data.dir={demo.dataset('scenes')}"])
    train_run(cfg, run, demo.progress)


# ---------------------------------------------------------------- running


def run_demo(demo: Demo) -> Path:
    """Run the chosen parts (skipping finished ones), then write the report; its path."""
    demo.out.mkdir(parents=True, exist_ok=True)
    state_path = demo.out / "demo.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    parts = state.setdefault("parts", {})
    if state.get("preset", demo.preset) != demo.preset:
        raise ConfigError(f"{demo.out} holds a demo run with --preset {state['preset']}; use another --out or that preset")
    state["preset"] = demo.preset
    titles = [(p, TITLES[p]) for p in PARTS]
    prepare_data(demo)
    state["machine"] = check_machine()
    _import_once()
    demo.start = time.time()  # the budget is the parts' time: data preparation and the probe come before it
    state["budget_s"] = demo.seconds  # this run's; a part keeps the budget it was first given
    for i, name in enumerate(demo.only):
        part = parts.setdefault(name, {})
        if part.get("done"):
            demo.banner(name, f"finished earlier in {clock(part['seconds'])}: kept")
            continue
        if "budget_s" not in part:  # first start: its share of the time left among the parts left
            left = demo.only[i:]
            part["budget_s"] = max(demo.left(), 0.0) * SHARES[name] / sum(SHARES[p] for p in left)
        else:
            demo.banner(name, "resuming the interrupted part from its checkpoints")
        _write_state(state_path, state)
        t = time.time()
        section, figures = RUNNERS[name](demo, part["budget_s"])
        (demo.out / name).mkdir(parents=True, exist_ok=True)
        (demo.out / name / "section.md").write_text(section)
        part.update(done=True, seconds=round(part.get("seconds", 0.0) + time.time() - t, 1), figures=figures)
        _write_state(state_path, state)
        if i < len(demo.only) - 1:  # the report so far (the last part's is written below)
            _write_report(demo, titles, state)
    path = _write_report(demo, titles, state)
    print(f"\n[demo] done in {clock(time.time() - demo.start)}: report in {path} and {path.with_suffix('.md')}")
    return path


def check_machine() -> dict:
    """A short probe of the machine's speed: says once when it is busy, and takes the fastest thread count."""
    from nanofm.train.machine import probe

    found = probe()
    found.apply()
    message = found.message()
    if message:
        print(f"[demo] {message}", flush=True)
    return {"busy": found.busy, "threads": found.best_threads, "gflops": round(found.gflops, 1),
            "slowdown": round(found.slowdown, 2), "message": message}


def _import_once() -> None:
    """What the first run of a process imports (torch's optimizers pull in torch._dynamo: seconds on 2
    cores; matplotlib for the plots), imported before the budget starts instead of inside a part's."""
    import matplotlib.figure  # noqa: F401
    import torch

    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])


def _write_report(demo: Demo, titles: list[tuple[str, str]], state: dict) -> Path:
    from nanofm.viz.report import write_report

    from .demo_claims import claims_markdown, write_claims

    write_claims(demo.out, state)
    busy = state.get("machine", {}).get("message")
    preface = ("## What this run shows", "", claims_markdown(state), *((f"*{busy}*", "") if busy else ()))
    return write_report(demo.out, titles, state, preface="\n".join(preface))


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(path)

