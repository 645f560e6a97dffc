"""Vision tasks: image classification with a ViT (from scratch, fine-tuned from an MAE run, or a linear
probe of its frozen features) and masked-autoencoder pretraining.

Data: a folder read by `nanofm.data.fashion_mnist.load_split` (a prepared Fashion-MNIST folder, a folder
of images per class, IDX files or CIFAR-10's python batches). Images stay uint8 (N, C, H, W) in memory;
the collator scales them to [0, 1], normalises them with the training split's channel mean and std, and
augments training batches (batched torch ops, the global RNG: exact on resume).

Legend: B batch, C channels, H, W image size, N patches, K classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from nanofm.config import ConfigError, require, to_dict
from nanofm.data.fashion_mnist import channel_stats, load_split
from nanofm.engine import TrainConfig, collate_generator
from nanofm.engine.checkpoint import pick_checkpoint, read_state_dict
from nanofm.engine.task import TaskParts
from nanofm.errors import DataError
from nanofm.families.vit.mae import load_pretrained_encoder, MAE, MAEConfig
from nanofm.families.vit.vit import ViT, ViTConfig
from nanofm.registry import get_config
from nanofm.runs import load_trained, open_run, pick_device, ranked
from nanofm.vision.augment import AugmentConfig, augment
from nanofm.vision.io import ImageSet, image_tensor
from nanofm.viz.images import (
    attention_rollout,
    confusion_matrix,
    plot_attention_overlays,
    plot_confusion_matrix,
    plot_reconstructions,
)


@dataclass
class ImageDataConfig:
    dir: str = "data/fashion-mnist"  # `nanofm data prepare fashion-mnist`, or a folder of your own (see module doc)
    eval_split: str = "val"  # split scored while training (the best checkpoint is chosen on it)
    test_split: str | None = "test"  # split reported at the end (None: none)
    val_size: int = 0  # > 0: hold this many training images out as the eval split instead (folders without one)
    labels: int | None = None  # classification: train on this many labelled images (as even across classes as the
    # data allows, chosen by train.seed; all when there are fewer), the scarce-label setting where pretraining
    # pays most; None: all of them
    mean: list[float] | None = None  # per-channel normalisation; None: measured on the training split
    std: list[float] | None = None
    classes: list[str] | None = None  # filled in from the data (kept in the run's config for `classify`)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training batches only


@dataclass
class ImageClassifyTaskConfig:
    task: Literal["image-classify"] = "image-classify"  # which task this config is for
    init: str | None = None  # an MAE run folder (its best checkpoint) or a .safetensors of its weights; None: random
    linear_probe: bool = False  # train the head only, on the frozen encoder's features
    model: ViTConfig = field(default_factory=lambda: get_config("vit-fmnist-s"))  # n_classes, image size: from data
    data: ImageDataConfig = field(default_factory=ImageDataConfig)  # images and augmentation
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=2000, batch_size=128, lr=2e-3, warmup_steps=200, weight_decay=0.05,
                                            eval_every=500, save_every=500, best_metric="eval/accuracy",
                                            best_mode="max", log_every=20)
    )  # the training run

    def __post_init__(self):
        require(bool(self.init) or not self.linear_probe,
                "linear_probe needs init: the MAE run whose frozen features the head is trained on", "linear_probe", "init")


@dataclass
class MAETaskConfig:
    task: Literal["mae"] = "mae"  # which task this config is for
    model: ViTConfig = field(default_factory=lambda: get_config("vit-fmnist-s"))  # the encoder (its head is unused)
    mae: MAEConfig = field(default_factory=MAEConfig)  # mask ratio, the light decoder, the pixel loss
    data: ImageDataConfig = field(default_factory=lambda: ImageDataConfig(augment=AugmentConfig(crop_scale=(0.5, 1.0), translate=0)))
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=3000, batch_size=128, lr=1.5e-3, warmup_steps=200, weight_decay=0.05,
                                            betas=(0.9, 0.95), eval_every=1000, save_every=500, best_metric=None,
                                            log_every=20)
    )  # the training run

    def __post_init__(self):
        require(self.data.labels is None, "MAE pretraining uses no labels: set data.labels on the fine-tuning run",
                "data.labels")


class ImageExamples(Sequence):
    """An ImageSet as examples {"images": uint8 (C, H, W), "targets": () int64, "augment": bool}."""

    def __init__(self, data: ImageSet, train: bool):
        self.data, self.train = data, train

    def __len__(self) -> int:
        return len(self.data.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"images": self.data.images[i], "targets": self.data.labels[i], "augment": self.train}


class ImageCollate:
    """Examples -> {"images": (B, C, H, W) float, normalised (and augmented when training), "targets": (B,)}."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], aug: AugmentConfig, with_targets: bool = True):
        self.mean = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
        self.aug, self.with_targets = aug, with_targets

    def normalise(self, images: Tensor) -> Tensor:  # uint8 or [0, 1] float (B, C, H, W) -> normalised
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        return (x - self.mean) / self.std

    def denormalise(self, x: Tensor) -> Tensor:  # -> [0, 1]
        return (x * self.std.to(x.device) + self.mean.to(x.device)).clamp(0, 1)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Tensor]:
        x = torch.stack([ex["images"] for ex in examples]).float() / 255  # (B, C, H, W) in [0, 1]
        if examples[0]["augment"]:
            x = augment(x, self.aug, collate_generator())  # seeded per micro-batch by the Trainer
        batch = {"images": self.normalise(x)}
        if self.with_targets:
            batch["targets"] = torch.stack([ex["targets"] for ex in examples])
        return batch


def load_image_data(cfg: ImageDataConfig, seed: int = 0) -> tuple[ImageSet, ImageSet, ImageSet | None, ImageDataConfig]:
    """(train, eval, test) sets, and cfg with mean, std (when unset) and classes filled from the training split
    (cfg itself is left as it was)."""
    train = load_split(cfg.dir, "train")
    if cfg.val_size:
        if not 0 < cfg.val_size < len(train.labels):
            raise ConfigError(f"data.val_size={cfg.val_size} must be between 1 and {len(train.labels) - 1} "
                             f"(the {len(train.labels)} training images of {cfg.dir})")
        order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))
        held, kept = order[: cfg.val_size], order[cfg.val_size :]
        evals = ImageSet(train.images[held], train.labels[held], train.classes)
        train = ImageSet(train.images[kept], train.labels[kept], train.classes)
    else:
        evals = load_split(cfg.dir, cfg.eval_split)
    test = load_split(cfg.dir, cfg.test_split) if cfg.test_split else None
    if cfg.mean is None or cfg.std is None:
        mean, std = channel_stats(train.images)
        cfg = replace(cfg, mean=mean, std=std)
    return train, evals, test, replace(cfg, classes=list(train.classes))


def _fit_model_to_data(model: ViTConfig, train: ImageSet, n_classes: int) -> ViTConfig:
    """The image size and channels of the data; n_classes of the head (0: none, the MAE encoder)."""
    c, h, w = train.images.shape[1:]
    if h != w:
        raise DataError(f"images are {h}x{w}; the ViT takes square images (resize them when preparing the data)")
    return replace(model, image_size=h, in_channels=c, n_classes=n_classes)


@torch.no_grad()
def predict_classes(model: ViT, data: Sequence[dict[str, Any]], collate: ImageCollate, batch_size: int = 256) -> Tensor:
    """Predicted class ids (N,) for examples (no augmentation)."""
    model.eval()
    device = next(model.parameters()).device
    preds = []
    for i in range(0, len(data), batch_size):
        batch = collate([{**data[j], "augment": False} for j in range(i, min(i + batch_size, len(data)))])
        preds.append(model(batch["images"].to(device)).logits.argmax(-1).cpu())
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def accuracy(model: ViT, data: ImageExamples, collate: ImageCollate) -> dict[str, float]:
    preds = predict_classes(model, data, collate)
    return {"accuracy": float((preds == data.data.labels).float().mean()) if len(data) else 0.0}


def load_mae_encoder(vit: ViT, path: str | Path) -> Path:
    """Copy an MAE run's encoder weights ("encoder.*") into a ViT; every encoder weight must fit (the
    classification head stays as initialised). Returns the weights file read."""
    path = Path(path)
    weights = path if path.suffix == ".safetensors" else pick_checkpoint(path, "latest") / "model.safetensors"
    try:
        load_pretrained_encoder(vit, read_state_dict(weights))
    except (KeyError, ValueError, RuntimeError) as e:
        raise DataError(f"{weights}: not the weights of an MAE with this encoder: {e}") from None
    return weights


def build_classify(cfg: ImageClassifyTaskConfig) -> TaskParts:
    train, evals, test, data = load_image_data(cfg.data, cfg.train.seed)
    if cfg.data.labels is not None:
        train = _few_labels(train, cfg.data.labels, cfg.train.seed, cfg.data.dir)
    cfg = replace(cfg, data=data, model=_fit_model_to_data(cfg.model, train, len(train.classes)))
    torch.manual_seed(cfg.train.seed)
    model = ViT(cfg.model)
    start = "random weights"
    if cfg.init:
        start = f"MAE encoder {load_mae_encoder(model, cfg.init)}"
    if cfg.linear_probe:
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("head.")
    collate = ImageCollate(cfg.data.mean, cfg.data.std, cfg.data.augment)
    train_data, eval_data = ImageExamples(train, True), ImageExamples(evals, False)
    test_data = ImageExamples(test, False) if test is not None else None

    def report(model, eval_data, metrics) -> str:
        if test_data is None:
            return f"{cfg.data.eval_split} accuracy {metrics.get('eval/accuracy', float('nan')):.4f}"
        return f"test accuracy {accuracy(model, test_data, collate)['accuracy']:.4f} ({len(test_data)} images)"

    def pictures(model, run_dir: Path) -> list[Path]:
        return classification_pictures(model, test_data or eval_data, collate, cfg.data.classes, run_dir)

    mode = "linear probe (frozen encoder)" if cfg.linear_probe else "full training"
    return TaskParts(
        model=model, train_data=train_data, eval_data=eval_data, collate=collate,
        compute_metrics=lambda model, data: accuracy(model, data, collate), report=report, pictures=pictures,
        describe=(f"image classification ({Path(cfg.data.dir).name}, {len(train.classes)} classes, "
                  f"{cfg.model.image_size}x{cfg.model.image_size}x{cfg.model.in_channels}): {len(train_data)} train, "
                  f"{len(eval_data)} {cfg.data.eval_split}, {len(test_data or [])} test; {mode} from {start}"),
        test_data=test_data, config=cfg,
    )


def _few_labels(train: ImageSet, n: int, seed: int, where: str) -> ImageSet:
    """n training images, the classes taking turns (a class that runs out leaves its turn to the others),
    each class's images in a seeded random order: the same n images for the same seed."""
    if n < 1:
        raise ConfigError(f"data.labels={n} must be at least 1 (or null: all the training images of {where})")
    if n >= len(train.labels):
        return train
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))
    by_class = [order[train.labels[order] == c] for c in range(len(train.classes))]
    rank = torch.empty(len(train.labels), dtype=torch.long)  # the round in which each image is taken
    for idx in by_class:
        rank[idx] = torch.arange(len(idx))
    chosen = sorted(order.tolist(), key=lambda i: (int(rank[i]), int(train.labels[i])))[:n]
    idx = torch.tensor(sorted(chosen))
    return ImageSet(train.images[idx], train.labels[idx], train.classes)


def build_mae(cfg: MAETaskConfig) -> TaskParts:
    train, evals, _, data = load_image_data(cfg.data, cfg.train.seed)
    cfg = replace(cfg, data=data, model=_fit_model_to_data(cfg.model, train, 0))  # head-less: fine-tuning adds one
    torch.manual_seed(cfg.train.seed)
    model = MAE(ViT(cfg.model), cfg.mae)
    collate = ImageCollate(cfg.data.mean, cfg.data.std, cfg.data.augment, with_targets=False)
    eval_data = ImageExamples(ImageSet(evals.images[:2000], evals.labels[:2000], evals.classes), False)

    def pictures(model, run_dir: Path) -> list[Path]:
        return [mae_reconstructions(model, eval_data, collate, run_dir / "reconstructions.png")]

    return TaskParts(
        model=model, train_data=ImageExamples(train, True), eval_data=eval_data, collate=collate, pictures=pictures,
        report=lambda model, data, metrics: f"held-out reconstruction loss (masked patches) {metrics['eval/loss']:.4f}",
        describe=(f"masked-autoencoder pretraining ({Path(cfg.data.dir).name}): {len(train.labels)} images without "
                  f"their labels, {cfg.mae.mask_ratio:.0%} of {cfg.model.image_size // cfg.model.patch_size}^2 patches "
                  f"masked; {len(eval_data)} held-out images"),
        config=cfg,
    )


@torch.no_grad()
def mae_reconstructions(model: MAE, data: Sequence[dict[str, Any]], collate: ImageCollate, path: Path,
                        n: int = 8, seed: int = 0) -> Path:
    model.eval()
    device = next(model.parameters()).device
    images = collate([data[i] for i in range(min(n, len(data)))])["images"].to(device)
    masked, recon = model.reconstruct(images, generator=torch.Generator(device).manual_seed(seed))
    den = collate.denormalise
    return plot_reconstructions(den(images).cpu(), den(masked).cpu(), den(recon).cpu(), path,
                                title=f"MAE: {model.cfg.mask_ratio:.0%} of the patches masked")


@torch.no_grad()
def classification_pictures(model: ViT, data: ImageExamples, collate: ImageCollate, classes: list[str],
                            run_dir: Path, n_rollout: int = 8) -> list[Path]:
    """confusion_matrix.png over `data` and attention_rollout.png for its first images."""
    preds = predict_classes(model, data, collate)
    matrix = confusion_matrix(preds, data.data.labels, len(classes))
    out = [plot_confusion_matrix(matrix, classes, run_dir / "confusion_matrix.png", title=f"{len(data)} images")]
    device = next(model.parameters()).device
    idx = list(range(min(n_rollout, len(data))))
    images = collate([data[i] for i in idx])["images"].to(device)
    rollout = attention_rollout(model.attention_maps(images), has_cls=model.cfg.pool == "cls").cpu()
    captions = [f"{classes[int(preds[i])]}" + ("" if preds[i] == data.data.labels[i] else " (wrong)") for i in idx]
    out.append(plot_attention_overlays(collate.denormalise(images).cpu(), rollout, run_dir / "attention_rollout.png",
                                       captions, title="attention rollout from " + ("[CLS]" if model.cfg.pool == "cls" else "the mean token")))
    return out


# ---------------------------------------------------------------- using a trained run


class ImageClassifier:
    """A classification run folder: `ImageClassifier.load("runs/x")("shoe.png", k=3)` -> [(class, prob)]. An
    image is a file path, a Pillow image or an array (see vision.io.image_tensor); a list of them is a batch."""

    def __init__(self, model: ViT, collate: ImageCollate, classes: list[str], device: str | torch.device | None = None):
        self.device = pick_device(device)
        self.model, self.collate, self.classes = model.eval().to(self.device), collate, classes

    @classmethod
    def load(cls, run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = None) -> "ImageClassifier":
        cfg, model = load_trained(run_dir, "image-classify", "an image-classification", ViT, checkpoint)
        return cls(model, ImageCollate(cfg.data.mean, cfg.data.std, cfg.data.augment), cfg.data.classes, device)

    @torch.no_grad()
    def __call__(self, images: Any, k: int = 3) -> list:
        """One image -> its k likeliest classes [(class, probability)]; a list -> one such list each."""
        batch = images if isinstance(images, list) else [images]
        x = torch.stack([self._fit(image_tensor(im, channels=self.model.cfg.in_channels)) for im in batch])
        probs = self.model(self.collate.normalise(x).to(self.device)).logits.float().softmax(-1).cpu()  # (B, classes)
        out = ranked(probs, self.classes, k)
        return out if isinstance(images, list) else out[0]

    def _fit(self, img: Tensor) -> Tensor:
        """uint8 (C, H, W) resized (bilinear, antialiased) to the model's square input."""
        size = self.model.cfg.image_size
        if img.shape[-2:] == (size, size):
            return img
        img = torch.nn.functional.interpolate(img[None].float(), size=(size, size), mode="bilinear", antialias=True,
                                              align_corners=False)[0]
        return img.round().clamp(0, 255).to(torch.uint8)


def vision_finetune_config(run_dir: str | Path, data_dir: str, from_scratch: bool, linear_probe: bool) -> dict[str, Any]:
    """The classification config (a dict, for overrides) for an MAE run folder: its encoder's architecture
    and normalisation, the data folder, and init = the run (None with from_scratch). A linear probe trains
    the head alone, with a larger learning rate, no weight decay and no augmentation beyond flips."""
    run_dir = Path(run_dir)
    pre = open_run(run_dir, None).task_config()
    if pre.task != "mae":
        raise ConfigError(f"{run_dir}: not an MAE run (task {pre.task!r}); fine-tune from a `nanofm pretrain` MAE run")
    if linear_probe and from_scratch:
        raise ConfigError("--linear-probe trains a head on pretrained features; it cannot start from scratch")
    cfg = ImageClassifyTaskConfig(init=None if from_scratch else str(run_dir), linear_probe=linear_probe, model=pre.model)
    same_data = Path(data_dir).resolve() == Path(pre.data.dir).resolve()
    cfg.data = ImageDataConfig(dir=data_dir, mean=pre.data.mean if same_data else None,
                               std=pre.data.std if same_data else None)
    if linear_probe:
        cfg.data.augment = AugmentConfig(crop_scale=None, flip=True, translate=0)
        cfg.train = replace(cfg.train, lr=5e-3, weight_decay=0.0, warmup_steps=50)
    return to_dict(cfg)
