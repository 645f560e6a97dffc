"""One way to use a trained model: `nanofm.load(path)` opens a run folder, an unCLIP folder or a Hugging Face
folder and gives the predictor for what it was trained for.

    fill = nanofm.load("runs/bert")                 # FillMask:       fill("La capital de [MASK] es Madrid.")
    nanofm.load("runs/translate")("Soy estudiante.")  # Translator:   "I am a student."
    nanofm.load("runs/areas")("Abra el menú Formato.")  # TextClassifier: [("Writer", 0.71), ...]
    nanofm.load("runs/ner").entities("Juan vive en Madrid.")  # TokenTagger: [("Juan", "PER"), ("Madrid", "LOC")]
    nanofm.load("runs/vit")("shoe.png")             # ImageClassifier: [("Sneaker", 0.93), ...]
    nanofm.load("runs/unclip")(["un vestido rojo"], seed=0)  # TextToImage: images (N, C, H, W) in [0, 1]

`nanofm.pipeline("fill-mask", path)` is the same, checking that the model does that task (Hugging Face's
names). Every predictor takes one input or a list (a batch) and a `device` (default: CUDA, else MPS, else CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nanofm.config import ConfigError
from nanofm.families.bert.finetune import TextClassifier, TokenTagger, load_fine_tuned
from nanofm.families.bert.pretrain import FillMask
from nanofm.families.seq2seq.translation import Translator
from nanofm.families.t2i.pipeline import TextToImage
from nanofm.families.vit.task import ImageClassifier, ImageCollate
from nanofm.families.vit.vit import ViT
from nanofm.interop import is_hf_folder, load_hf, read_config
from nanofm.interop.folder import image_stats
from nanofm.runs import open_run
from nanofm.vision.augment import AugmentConfig

PIPELINES = {"fill-mask": FillMask, "translation": Translator, "text-classification": TextClassifier,
             "token-classification": TokenTagger, "image-classification": ImageClassifier, "text-to-image": TextToImage}
Predictor = FillMask | Translator | TextClassifier | TokenTagger | ImageClassifier | TextToImage


def load(path: str | Path, checkpoint: str = "best", device: str | torch.device | None = None) -> Predictor:
    """The predictor of a run folder (at `checkpoint`: "best", "latest" or a checkpoint folder), an unCLIP
    folder (unclip.yaml) or a Hugging Face folder (config.json; BERT or ViT)."""
    path = Path(path)
    if (path / "unclip.yaml").is_file():
        return TextToImage.load(path, checkpoint, device)
    if is_hf_folder(path):
        return _load_hf(path, device)
    run = open_run(path, None)
    if run.task == "mlm":
        return FillMask.load(path, checkpoint, device)
    if run.task in ("translate-transformer", "translate-rnn"):
        return Translator.load(path, checkpoint, device)
    if run.task == "image-classify":
        return ImageClassifier.load(path, checkpoint, device)
    if run.task == "finetune":
        return load_fine_tuned(path, checkpoint, device)
    raise ConfigError(f"{path}: a {run.task!r} run has no predictor; nanofm.load opens mlm, finetune, translation and "
                      "image-classify runs, unCLIP folders (nanofm unclip) and Hugging Face BERT and ViT folders")


def pipeline(task: str, model: str | Path, checkpoint: str = "best", device: str | torch.device | None = None) -> Predictor:
    """`load(model)`, checked to do `task` (one of PIPELINES' names, as Hugging Face's pipelines)."""
    if task not in PIPELINES:
        raise ConfigError(f"unknown pipeline task {task!r}; the tasks are {', '.join(PIPELINES)}")
    predictor = load(model, checkpoint, device)
    if not isinstance(predictor, PIPELINES[task]):
        does = next(name for name, cls in PIPELINES.items() if isinstance(predictor, cls))
        raise ConfigError(f"{model}: a {does} model, not {task}")
    return predictor


def _load_hf(path: Path, device: Any) -> Predictor:
    arch = (read_config(path).get("architectures") or ["?"])[0]
    if arch in ("BertForSequenceClassification", "BertForTokenClassification"):
        return load_fine_tuned(path, device=device)
    if arch.startswith("Bert"):
        return FillMask.load(path, device=device)
    conv = load_hf(path)
    if not isinstance(conv.model, ViT) or not conv.model.cfg.n_classes:
        raise ConfigError(f"{path}: a {conv.architecture}; nanofm.load opens Hugging Face BERT (masked LM, classifiers) "
                          "and ViTForImageClassification folders")
    mean, std = image_stats(path, conv.model.cfg.in_channels)
    labels = conv.labels or [f"LABEL_{i}" for i in range(conv.model.cfg.n_classes)]
    return ImageClassifier(conv.model, ImageCollate(mean, std, AugmentConfig()), labels, device)
