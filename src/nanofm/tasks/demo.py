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
from dataclasses import dataclass, field
from pathlib import Path

from nanofm.config import ConfigError
from nanofm.train.config import parse_duration
from nanofm.viz.report import clock

PARTS = ("translation", "bert", "vision", "t2i")
SHARES = {"translation": 0.2, "bert": 0.3, "vision": 0.2, "t2i": 0.3}  # of the time left, among the parts left
TITLES = {"translation": "Translation: RNN with attention vs Transformer", "bert": "Spanish BERT and the BETO table",
          "vision": "Vision Transformer, with and without MAE pretraining",
          "t2i": "Text to image: CLIP, diffusion prior, diffusion decoder (DALL-E 2)"}
DATA = {"translation": "translation-es-en", "corpus": "corpus-es", "tasks": "beto-tasks", "fmnist": "fashion-mnist",
        "scenes": "fashion-scenes"}
FILL_MASK = ["La capital de [MASK] es Madrid.", "El [MASK] de la mañana.", "Abra el menú [MASK] y elija Guardar.",
             "Y dijo Dios: Sea la [MASK].", "El perro [MASK] en el jardín.", "Pulse la tecla [MASK] para continuar."]

# The demo's recipe on top of the configs (both presets): bf16 autocast where it is measured faster on this
# machine; translation validates on its loss over 200 pairs while training (no decoding before the model can
# say anything) and keeps the checkpoint with the lowest one.
# Warm-ups are cut to 100 steps (50 for the ViT): the configs' 200-400 are sized for hour-long runs, and a
# run of a few hundred steps would spend most of itself warming up.
# Translation learns on short sentences (at most SHORT tokens a side: half the training pairs) and is tested
# on the short test pairs: minutes of training reach readable translations of those, not of 60-word ones.
# Both models share a BPE vocabulary of 4,000 (the configs' 8,000 spends minutes on the output layer), and the
# Transformer is narrowed to width 128: at 150 s of training it reached 22.0 BLEU against 2.36 at width 256
# and 8,000 words, while the RNN did best at its own width (8.89 against 6.45 at 128); runs in
# bench/results/demo-curves-translation-20261207.txt.
SHORT = 24
_SEQ = ["data.bleu_sentences=0", "data.valid_sentences=200", "train.eval_every=0", "train.best_metric=eval/loss",
        "train.best_mode=min", "train.precision=bf16", "train.warmup_steps=100", f"data.max_tokens={SHORT}",
        "data.vocab_size=4000"]
# BERT pretrains a 128-wide bert-mini (2 heads of 64) at batch 32: after 3 minutes, held-out masked accuracy
# 14.3% against 9.7% for the config's 256-wide model at batch 64 (bench/results/demo-curves-mlm-20261207.txt).
DEMO = {"translate-rnn": _SEQ, "translate-transformer": [*_SEQ, "model.d_model=128", "model.d_ff=512"],
        "mlm": ["train.precision=bf16", "train.warmup_steps=100", "model.d_model=128", "model.d_ff=512",
                "model.n_heads=2", "train.batch_size=32"],
        "vit": ["train.warmup_steps=50"]}
MAE_SHARE = 0.85  # of the MAE column: pretraining (fine-tuning on 200 labels is converged in 20-40 s: 71.5% and
# 71.9% from one MAE run, bench/results/demo-curves-vision-20261207.txt)
PROBE_WEIGHT = 0.2  # the linear probe's time, against a column's (it is shown, not part of the claim)
LABELS = {"tiny": {"bert": 50, "vision": 200},  # labelled training examples of each fine-tuning run (the unlabelled
          "laptop": {"bert": 500, "vision": 200}}  # data, all of it, pretrains)
TEST_SENTENCES = {"tiny": 20, "laptop": 500}  # test pairs decoded for BLEU, spread over the split

# Tiny models and short evaluations (the smoke test, a first look in seconds); "laptop" uses the configs as they are.
_RUN = ["train.warmup_steps=2", "train.eval_every=0", "train.save_every=0", "train.batch_size=16"]
_DIFF = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "model.diffusion.timesteps=50",
         "data.eval_size=50", *_RUN]
TINY = {
    "translate-rnn": ["model.d_embed=32", "model.d_hidden=32", "model.d_attn=32", "data.bleu_sentences=20", *_RUN],
    "translate-transformer": ["model.d_model=32", "model.n_heads=2", "model.n_encoder_layers=1", "model.n_decoder_layers=1",
                              "model.d_ff=64", "data.bleu_sentences=20", *_RUN],
    "mlm": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "model.max_len=32",
            "data.max_len=32", *_RUN],
    "finetune": ["train.batch_size=16", "train.warmup_steps=2"],
    "vit": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "model.patch_size=7", *_RUN],
    "mae": ["mae.decoder_dim=32", "mae.decoder_layers=1", "mae.decoder_heads=2", "mae.decoder_d_ff=64"],
    "clip": ["model.text.d_model=32", "model.text.n_layers=1", "model.text.n_heads=2", "model.text.d_ff=64",
             "model.image.d_model=32", "model.image.n_layers=1", "model.image.n_heads=2", "model.image.d_ff=64",
             "model.embed_dim=16", "data.eval_size=50", *_RUN],
    "prior": [*_DIFF, "sample_steps=3"],
    "decoder": _DIFF,
    "verifier": ["model.width=8", "model.hidden=16", "data.eval_size=50", *_RUN],
}
SAMPLING = {"tiny": {"n": 4, "steps": 3}, "laptop": {"n": 200, "steps": 25}}  # one-item captions scored, DDIM steps
VERIFIER_BUDGET = "8m"  # the laptop preset's verifier, trained once before the budget: about 92% right on real scenes


@dataclass
class Demo:
    budget: str = "30m"
    out: Path = Path("runs/demo")
    data: Path = Path("data")
    configs: Path = Path("configs")
    only: tuple[str, ...] = PARTS
    preset: str = "laptop"  # or "tiny"
    progress: bool = True
    start: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.out, self.data, self.configs = Path(self.out), Path(self.data), Path(self.configs)
        unknown = [p for p in self.only if p not in PARTS]
        if unknown:
            raise ConfigError(f"--only: unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
        if self.preset not in SAMPLING:
            raise ConfigError(f"--preset must be one of {', '.join(SAMPLING)}, got {self.preset!r}")
        self.seconds = parse_duration(self.budget)

    def left(self) -> float:
        return self.seconds - (time.time() - self.start)

    def overrides(self, role: str) -> list[str]:
        """The demo's recipe for a run of this role, then the tiny preset's sizes."""
        return [*DEMO.get(role, []), *(TINY[role] if self.preset == "tiny" else [])]

    def verifier(self) -> Path | None:
        """The cached verifier run of the laptop preset (prepare_data trains it), None for tiny."""
        return None if self.preset == "tiny" else self.data / f"{DATA['scenes']}-verifier"

    def config(self, name: str) -> Path:
        path = self.configs / name
        if not path.is_file():
            raise ConfigError(f"{path}: no such config (--configs names the folder holding nanofm's configs)")
        return path

    def dataset(self, key: str) -> Path:
        return self.data / DATA[key]

    def banner(self, part: str, what: str) -> None:
        """Where the demo is: the part, the step within it, the time spent and left."""
        i = self.only.index(part) + 1
        spent, left = time.time() - self.start, max(self.left(), 0.0)
        print(f"\n[demo {i}/{len(self.only)} {part}] {what} | {clock(spent)} spent, {clock(left)} left in the "
              f"budget of {self.budget}", flush=True)


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
    from .demo_parts import RUNNERS

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

