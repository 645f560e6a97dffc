"""Model cards: the README.md that `nanofm train`/`pretrain`/`finetune` write into a finished run folder and
`nanofm convert --to-hf` into an export. What the model is, the data it learned from, the metrics measured
on it, how to load it (nanofm, and transformers for an export) and its full config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nanofm.engine.checkpoint import read_pointer
from nanofm.engine.tracking import read_metrics

CARD = "README.md"

# task -> (what the run holds, an input for its predictor or None, the transformers class of its export or None)
KINDS: dict[str, tuple[str, str | None, str | None]] = {
    "mlm": ("a BERT pretrained by masked-language modelling", '"La capital de [MASK] es Madrid."', "AutoModelForMaskedLM"),
    "finetune": ("a BERT fine-tuned on a labelled task", '"Abra el menú Formato."', "AutoModelForSequenceClassification"),
    "translate-transformer": ("a Transformer encoder-decoder for translation", '"Abra el menú Archivo."', None),
    "translate-rnn": ("a GRU encoder-decoder with attention for translation", '"Abra el menú Archivo."', None),
    "image-classify": ("a Vision Transformer image classifier", '"image.png"', "AutoModelForImageClassification"),
    "mae": ("a Vision Transformer pretrained as a masked autoencoder (fine-tune it: nanofm finetune RUN --task DATA)",
            None, "AutoModel"),
    "clip": ("a CLIP text and image encoder pair (the text-to-image pipeline's first part)", None, None),
    "diffusion-prior": ("a diffusion prior from CLIP text to image embeddings (write an unCLIP folder: nanofm unclip)",
                        None, None),
    "diffusion-decoder": ("a diffusion decoder from CLIP image embeddings to images (nanofm unclip)", None, None),
    "scene-verifier": ("a scene verifier that reads the item and colour at each position of a scene", None, None),
    "copy": ("a Transformer trained on the copy task (a check of the training loop)", None, None),
}


def model_card(run_dir: str | Path, report: str | None = None, export: str | None = None) -> str:
    """The card of run folder `run_dir`; `report` is the test-set line its training printed; with `export`
    (the transformers class written), the card of a Hugging Face folder exported from it."""
    run_dir = Path(run_dir)
    config = (run_dir / "config.yaml").read_text(encoding="utf-8")
    cfg: dict[str, Any] = yaml.safe_load(config) or {}
    task = str(cfg.get("task"))
    what, example, hf_class = KINDS.get(task, (f"a {task} run", None, None))
    train, model, data = cfg.get("train") or {}, cfg.get("model") or {}, cfg.get("data") or {}
    best = read_pointer(run_dir / "checkpoints", "best") or read_pointer(run_dir / "checkpoints", "latest")
    sizes = ", ".join(f"{k} {model[k]}" for k in ("d_model", "n_layers", "n_heads", "d_ff", "vocab_size", "image_size",
                                                 "patch_size", "max_len") if k in model)
    here = "." if export else str(run_dir)
    lines = [f"# {run_dir.name}", "", f"{what[0].upper()}{what[1:]}, trained with nanofm (task `{task}`; {sizes}).", ""]
    if export:
        lines += [f"Exported from the nanofm run folder `{run_dir}` (checkpoint {best}) by `nanofm convert --to-hf`.", "",
                  "## Use it", "", "```python", f"from transformers import {export}", "",
                  f'model = {export}.from_pretrained("{here}")', "```", "",
                  f"or with nanofm: `nanofm.load(\"{here}\")`.", ""]
    else:
        lines += ["## Use it", ""]
        if example:
            lines += ["```python", "import nanofm", "", f'predict = nanofm.load("{here}")', f"predict({example})", "```", "",
                      f"or on the command line: `nanofm predict {here} {example}`.", ""]
        if hf_class:
            lines += [f"For transformers: `nanofm convert --to-hf {here} OUT`, then `{hf_class}.from_pretrained(OUT)`.", ""]
    lines += ["## Data and training", "", f"- data: `{data.get('dir') or '(none: converted from Hugging Face)'}`"
              + (f", {data['labels']} labelled examples" if data.get("labels") else ""),
              f"- training: {_length(train)}, batch {train.get('batch_size')}, lr {train.get('lr')}; kept checkpoint {best}", ""]
    evals = [r for r in read_metrics(run_dir / "metrics.jsonl", warn=lambda _: None) if any(k.startswith("eval/") for k in r)]
    lines += ["## Metrics", ""]
    if evals:
        last = evals[-1]
        lines.append(f"- last evaluation (step {last['step']}, held-out split): "
                     + ", ".join(f"{k[5:]} {v:.4f}" for k, v in last.items() if k.startswith("eval/")))
    if report:
        lines.append(f"- {report.strip()}")
    if not evals and not report:
        lines.append("- none measured")
    lines += ["", "## Config", "", "```yaml", config.rstrip(), "```", ""]
    return "\n".join(lines)


def write_model_card(run_dir: str | Path, report: str | None = None, out: str | Path | None = None,
                     export: str | None = None) -> Path:
    """Write the card into `out` (default: the run folder itself) as README.md; its path."""
    path = Path(out or run_dir) / CARD
    path.write_text(model_card(run_dir, report, export), encoding="utf-8")
    return path


def _length(train: dict[str, Any]) -> str:
    if train.get("budget"):
        return f"a budget of {train['budget']}"
    return f"{train['epochs']} epochs" if train.get("epochs") else f"{train.get('steps')} steps"
