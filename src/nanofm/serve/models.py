"""The loaded models as the server sees them: a name, a kind (what it serves), a description for GET /models,
and the batch functions the Batcher calls in a worker thread, built on the predictors of `nanofm.load`.

Every predictor runs a list of inputs as one batch (fill-mask: one padded forward pass, the texts checked
beforehand: each holds a [MASK] and fits the model, so nothing is truncated)."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image

from nanofm.api import Predictor, load
from nanofm.engine.tracking import read_metrics
from nanofm.families.bert.finetune import TextClassifier, TokenTagger, bio_entities
from nanofm.families.bert.pretrain import FillMask
from nanofm.families.seq2seq.translation import Translator
from nanofm.families.t2i.pipeline import TextToImage
from nanofm.families.vit.task import ImageClassifier

KINDS = {FillMask: "fill-mask", Translator: "translation", TextClassifier: "text-classification",
         TokenTagger: "token-classification", ImageClassifier: "image-classification", TextToImage: "text-to-image"}
ENDPOINTS = {"fill-mask": "fill-mask", "translation": "translate", "text-classification": "classify",
             "token-classification": "tag", "image-classification": "classify-image", "text-to-image": "generate"}


@dataclass
class Served:
    name: str
    path: str
    predictor: Predictor
    kind: str = field(init=False)
    info: dict[str, Any] = field(default_factory=dict)  # config summary and metrics, for GET /models

    def __post_init__(self) -> None:
        self.kind = KINDS[type(self.predictor)]

    @property
    def endpoint(self) -> str:
        return f"/models/{self.name}/{ENDPOINTS[self.kind]}"

    def token_count(self, text: str) -> int:
        """Tokens the model would see for `text` (special tokens included), before any truncation."""
        p = self.predictor
        if isinstance(p, Translator):
            return len(p.tok.encode(text)) + 1  # + EOS
        return len(p.tok.encode(text).ids)

    def model_len(self) -> int:
        p = self.predictor
        if isinstance(p, Translator):
            return p.cfg.model.max_len - 1  # encode keeps max_len - 2 tokens and EOS
        if isinstance(p, FillMask):
            return p.model.cfg.max_len
        return getattr(p, "max_len", 0)  # images and captions have no token limit here


def load_served(paths: list[str], checkpoint: str = "best", device: str | None = None) -> dict[str, Served]:
    """Each folder loaded once with nanofm.load; named by its folder (a repeated name gets -2, -3, ...)."""
    out: dict[str, Served] = {}
    for path in paths:
        base = re.sub(r"[^\w.-]+", "-", Path(path).resolve().name) or "model"  # a safe URL path segment
        name, n = base, 2
        while name in out:
            name, n = f"{base}-{n}", n + 1
        out[name] = Served(name, str(path), load(path, checkpoint, device), describe(Path(path)))
    return out


def describe(path: Path) -> dict[str, Any]:
    """The model section of a run's config.yaml (or a Hugging Face config.json) and its last logged metrics."""
    info: dict[str, Any] = {}
    if (path / "config.yaml").is_file():
        cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        info["config"] = {k: v for k, v in (cfg.get("model") or {}).items() if isinstance(v, (int, float, str))}
    elif (path / "config.json").is_file():
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        info["config"] = {k: v for k, v in cfg.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    elif (path / "unclip.yaml").is_file():
        info["config"] = yaml.safe_load((path / "unclip.yaml").read_text(encoding="utf-8")) or {}
    if (path / "metrics.jsonl").is_file():  # read as the trainer writes it (a torn last line skipped)
        scores: dict[str, float] = {}
        for row in read_metrics(path / "metrics.jsonl", warn=lambda message: None):
            scores.update({k: v for k, v in row.items() if k.startswith(("eval/", "test/")) and isinstance(v, (int, float))})
        info["metrics"] = scores
    return info


# ---------------------------------------------------------------- batch functions: (inputs, options) -> outputs


def translate(p: Translator, texts: list[str], beam: int, attention: bool) -> list[dict[str, Any]]:
    """Translations of a batch; with `attention`, the last layer's cross-attention (mean of its heads)."""
    out = []
    for text, translation in zip(texts, p.translate(texts, beam=beam)):
        answer: dict[str, Any] = {"translation": translation}
        if attention and text.strip():
            src, tgt, maps = p.attention(text, translation)  # maps (L, H, T, S)
            answer["attention"] = {"source": src, "target": tgt, "weights": maps[-1].mean(0).tolist()}  # (T, S)
        out.append(answer)
    return out


def tag(p: TokenTagger, texts: list[str]) -> list[dict[str, Any]]:
    out = []
    for tagged in p(texts):
        spans = sorted(bio_entities([t for _, t in tagged]))
        out.append({"tokens": [{"word": w, "tag": t} for w, t in tagged],
                    "entities": [{"text": " ".join(w for w, _ in tagged[a:b]), "type": kind} for a, b, kind in spans]})
    return out


def generate_png(p: TextToImage, caption: str, n: int, steps: int, guidance: float, seed: int) -> bytes:
    """n images of `caption` side by side, as one PNG."""
    images = p([caption] * n, steps=steps, guidance=guidance, seed=seed)  # (N, C, H, W) in [0, 1]
    row = torch.cat(list(images), dim=-1)  # (C, H, N * W)
    pixels = (row * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # (H, N * W, C)
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buf, format="PNG")
    return buf.getvalue()
