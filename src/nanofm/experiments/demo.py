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

import importlib.util
import json
import time
from pathlib import Path

import torch

from nanofm.config import ConfigError
from nanofm.data.corpus import PACKAGES, SOURCES, prepare_corpus
from nanofm.data.fashion_mnist import DEBIAN_SOURCE, prepare_fashion_mnist
from nanofm.data.scenes import prepare_scenes
from nanofm.data.sources.debian import unavailable
from nanofm.data.spanish_tasks import SPACY_MODEL, prepare_beto_tasks
from nanofm.data.translation import packages_for, prepare_translation
from nanofm.engine.machine import probe
from nanofm.experiments.demo_claims import claims_markdown, write_claims
from nanofm.experiments.demo_parts import RUNNERS
from nanofm.experiments.demo_plan import PARTS, SHARES, TITLES, VERIFIER_BUDGET, Demo
from nanofm.experiments.vision import train_run
from nanofm.tasks import load_task_config
from nanofm.viz.report import clock, write_report

# ---------------------------------------------------------------- data


NEEDS = {"translation": ["translation"], "bert": ["corpus", "tasks"], "vision": ["fmnist"], "t2i": ["fmnist", "scenes"]}
MARKER = {"translation": "test.tsv", "corpus": "tokenizer.json", "tasks": "*/task.json", "fmnist": "meta.json",
          "scenes": "meta.json"}
MODULES = {"translation": ["pysword"], "corpus": ["pysword"], "tasks": ["spacy", SPACY_MODEL, "pysword"]}  # to prepare
RUN_MODULES = ["sacrebleu", "matplotlib", "markdown"]  # to run the parts and write the report


def missing_data(demo: Demo) -> list[str]:
    """The datasets (keys of DATA) the chosen parts need and that are not prepared yet, in preparation order."""
    keys = dict.fromkeys(k for p in demo.only for k in NEEDS[p])
    return [k for k in keys if not any(demo.dataset(k).glob(MARKER[k]))]


def check_needs(demo: Demo) -> None:
    """Before anything is prepared: every Python module and Debian package that preparing the missing datasets
    and running the parts need is here (or can be fetched); else one error naming all of them."""
    problems, packages = [], {}
    missing = missing_data(demo)
    for key in missing:
        problems += [f"Python module {m} (to prepare {demo.dataset(key)})" for m in MODULES.get(key, [])
                     if importlib.util.find_spec(m) is None]
        names = {"translation": packages_for("es-en"), "corpus": [PACKAGES[s] for s in SOURCES],
                 "tasks": [PACKAGES["libreoffice"], PACKAGES["fortunes"], *(PACKAGES[s] for s in SOURCES)]}.get(key, [])
        if key == "fmnist" and not Path(DEBIAN_SOURCE).is_dir():
            names = ["dataset-fashion-mnist"]
        packages.update({n: key for n in names})
    problems += [f"Python module {m} (the demo's scores and report)" for m in RUN_MODULES if importlib.util.find_spec(m) is None]
    for name, key in packages.items():
        why = unavailable(name)
        if why:
            problems.append(f"Debian package {name} (to prepare {demo.dataset(key)}): {why}")
    if problems:
        raise ConfigError("the demo cannot start; missing:\n  " + "\n  ".join(dict.fromkeys(problems)) +
                          "\n`make demo` installs all of them (see README, Installing elsewhere, for other systems)")


def prepare_data(demo: Demo) -> None:
    """Prepare whatever the chosen parts need and is missing, with the same functions as `nanofm data prepare`,
    after checking that everything needed for it is here (check_needs)."""
    check_needs(demo)
    for key in missing_data(demo):
        path = demo.dataset(key)
        print(f"[demo] preparing {path} (missing)", flush=True)
        if key == "translation":
            prepare_translation("es-en", path)
        elif key == "corpus":
            prepare_corpus(path, "es", SOURCES)
        elif key == "tasks":
            prepare_beto_tasks(path)
        elif key == "fmnist":
            prepare_fashion_mnist(path)
        else:
            prepare_scenes(path)
    verifier = demo.verifier() if "t2i" in demo.only else None
    if verifier is not None and not (verifier / "checkpoints" / "best").exists():
        train_verifier(demo, verifier)


def train_verifier(demo: Demo, run: Path) -> None:
    """The text-to-image judge, trained once on real scenes before the budget starts (resumed if interrupted):
    a verifier trained inside a few minutes is right too rarely to measure fidelity with."""
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
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])


# the demo's trained models a user can try (`nanofm serve`), where the parts leave them
SERVABLE = ("translation/translate-transformer", "bert/pretrain", "bert/table/*/column0",  # the fine-tuned BERTs
            "vision/mae-finetune", "t2i/unclip")


def serve_command(demo: Demo) -> str | None:
    """`nanofm serve` with the run folders of the parts done so far (None before any): try them in a browser."""
    runs = [r for pattern in SERVABLE for r in sorted(demo.out.glob(pattern))
            if (r / "config.yaml").is_file() or (r / "unclip.yaml").is_file()]
    return f"nanofm serve {' '.join(str(r) for r in runs)}" if runs else None


def _write_report(demo: Demo, titles: list[tuple[str, str]], state: dict) -> Path:
    write_claims(demo.out, state)
    busy = state.get("machine", {}).get("message")
    preface = ["## What this run shows", "", claims_markdown(state), *((f"*{busy}*", "") if busy else ())]
    serve = serve_command(demo)
    if serve:
        preface += ["Try the trained models in a browser (a page at http://127.0.0.1:8000, and a JSON API):", "",
                    f"    {serve}", ""]
    return write_report(demo.out, titles, state, preface="\n".join(preface))


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(path)

