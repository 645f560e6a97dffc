"""The demo's plan: its parts, their shares of the budget, the short-run recipe laid over the configs, and
`Demo`, the settings of one run (budget, folders, preset) that every part reads. `nanofm.experiments.demo`
runs it; `nanofm.experiments.demo_parts` holds the parts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from nanofm.config import SHIPPED, ConfigError
from nanofm.engine.config import parse_duration
from nanofm.viz.report import clock

PARTS = ("translation", "bert", "vision", "t2i")
SHARES = {"translation": 0.2, "bert": 0.3, "vision": 0.28, "t2i": 0.22}  # of the time left, among the parts left
# Vision took 8% from text to image (was 20/30/20/30): MAE gained with time in the vision part alone (+2.25 points
# at 9 minutes, bench/results/demo-vision-9m-20261207.txt), though not in the 30-minute demo (-0.48 points,
# bench/results/demo-20261207-1528-report.md), where text to image kept its claim at 6:32 (caption fidelity
# 83.0%, CLIP 80.9%). More vision time does not carry MAE either: with both columns the same time, +1.37 points in
# the 30-minute demo (bench/results/demo-20261207-1808-report.md), +0.13 with the vision part alone at 10 minutes
# (bench/results/demo-vision-10m-20261207.txt).
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
# BERT pretrains a 128-wide, 2-layer bert-mini (2 heads of 64) at batch 16: after 3 minutes, held-out masked
# accuracy 16.1% against 15.5% at batch 32, 14.3% with 4 layers and 9.7% for the config's 256-wide, 4-layer
# model at batch 64 (bench/results/demo-curves-mlm-20261207.txt). Its attention has ALiBi's distance bias
# (model.position_bias): past BERT's plateau near 15% in about a minute instead of staying on it
# (bench/results/demo-curves-mlm-alibi-20261207.txt).
DEV_SIZE = 256  # dev examples a BETO-table run evaluates on while training: the whole dev split of LibreOffice
# areas (2,368 texts) took 5 s an evaluation, so a 13 s run trained 35 steps and stayed at the majority class
# (bench/results/demo-20261207-1645.txt)
# The table's classifiers read the mean of the token vectors, not [CLS] (model.pool): MLM pretraining trains
# every token's vector but never the last layer's [CLS] one, so a 13 s fine-tune from [CLS] left
# fortunes-category at the majority class (pretrained 46.11% against random weights 46.53%, mean of 2 seeds);
# from the mean it gains (48.83% against 46.53%; libreoffice-area +15.65 points against +9.99 from [CLS];
# bench/results/beto-meanpool-20261207.txt).
DEMO = {"translate-rnn": _SEQ, "translate-transformer": [*_SEQ, "model.d_model=128", "model.d_ff=512"],
        "mlm": ["train.precision=bf16", "train.warmup_steps=100", "model.d_model=128", "model.d_ff=512",
                "model.n_heads=2", "model.n_layers=2", "train.batch_size=16", "model.position_bias=alibi"],
        "finetune": [f"data.dev_size={DEV_SIZE}", "model.pool=mean"],
        "vit": ["train.warmup_steps=50", "model.patch_dropout=0.5"],
        "mae": ["mae.decoder_dim=32", "mae.decoder_layers=1", "mae.decoder_heads=2", "mae.decoder_d_ff=128",
                "model.patch_dropout=0"],  # MAE hides patches by its own mask_ratio
        "clip": ["model.text.n_layers=2", "model.image.n_layers=2"],
        "decoder": ["train.batch_size=32", "model.n_layers=2", "train.lr=2e-3"]}
# The MAE decoder is 1 block 32 wide (the config's: 2 blocks 64 wide): the decoder, over all 49 positions, cost
# more than the encoder over the 12 visible ones; MAE pretrains at 1,893 images/s instead of ~960, its linear probe
# 69.93% against 68.62% at 9 minutes (bench/results/demo-vision-9m-dec32-20261207.txt).
# CLIP's two towers are 2 blocks deep instead of 4: twice the steps in its 100 s, and caption retrieval top-1
# among 100 (validation scenes) 84.85% against 77.35% (bench/results/demo-curves-clip-20261207.txt).
# The diffusion decoder trains at batch 32, twice the steps of the config's 64 in the same time: after 4 minutes
# on one demo's CLIP run, caption fidelity 44.5% against 28.0% at 64 and 37.5% at 16
# (bench/results/demo-curves-t2i-20261207.txt). It is 2 blocks deep instead of 6, at twice the learning rate:
# 3x the steps in 4 minutes, and caption fidelity 82.0% against 49.0% for 6 blocks at 1e-3 on the CLIP and
# prior of the demo of 6205bbf (3 blocks 79.0%; 6 blocks at 2e-3 73.5%; bench/results/demo-curves-t2i-20261207b.txt).
# The ViT's training runs leave half of each image's patches out (model.patch_dropout): the MAE encoder has only
# seen a quarter of them, and fine-tuned on the 200 labels for 26 s from one demo's MAE it read 74.14% and 73.88%
# with half of them dropped (74.74% with 75%, 71.06% with none), while the ViT from scratch (173 s) read 70.67%
# and 70.13% with half dropped (72.88% with 75%; the demo's own run without: 70.29%): MAE's gain +3.61 points
# at half, +1.86 at 75%; bench/results/vision-patchdropout-20261207.txt.
MAE_SHARE = 0.85  # of the MAE column: pretraining (fine-tuning on 200 labels is converged in 20-40 s: 71.5% and
# 71.9% from one MAE run, bench/results/demo-curves-vision-20261207.txt)
PROBE_WEIGHT = 0.2  # the linear probe's time, against a column's (it is shown, not part of the claim)
LABELS = {"tiny": {"bert": 50, "vision": 200},  # labelled training examples of each fine-tuning run (the unlabelled
          "laptop": {"bert": 500, "vision": 200}}  # data, all of it, pretrains)
CURVES = {"tiny": {"bert": (20, 50), "vision": (50, 200)},  # label curves: pretrained vs random weights at these
          "laptop": {"bert": (50, 500, 2000), "vision": (50, 200, 2000)}}  # counts (the tables' own count reused)
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
    configs: Path = SHIPPED  # the configs installed with nanofm (the repository's configs/)
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
