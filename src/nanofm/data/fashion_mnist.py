"""Fashion-MNIST from the Debian package `dataset-fashion-mnist`, and one reader for every image layout.

    prepare_fashion_mnist("data/fashion-mnist")   # train/val/test.safetensors + meta.json
    train = load_split("data/fashion-mnist", "train")   # ImageSet: uint8 (55000, 1, 28, 28), int64 labels

The validation split is held out of the 60,000 training images, stratified by class (each class gives
the same share) and drawn with a seeded torch.Generator: the same seed gives the same files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor

from nanofm.config import ConfigError
from nanofm.errors import DataError
from nanofm.vision.io import ImageSet, load_cifar10, load_idx, load_image_folder, load_image_set, save_image_set

DEBIAN_SOURCE = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def prepare_fashion_mnist(out: str | Path = "data/fashion-mnist", source: str | Path = DEBIAN_SOURCE,
                          val_size: int = 5000, seed: int = 0) -> dict:
    """Write out/{train,val,test}.safetensors and out/meta.json (classes, sizes, train mean/std); return the meta."""
    source, out = Path(source), Path(out)
    paths = {split: [_idx_path(source, name) for name in names] for split, names in IDX_FILES.items()}
    missing = [str(source / f"{name}.gz") for names in IDX_FILES.values() for name in names
               if _idx_path(source, name) is None]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST not found: {', '.join(missing)} missing; install it with "
                                f"`sudo apt-get install dataset-fashion-mnist` or pass --source FOLDER")
    full = load_idx(*paths["train"], classes=CLASSES)
    test = load_idx(*paths["test"], classes=CLASSES)
    if not 0 <= val_size < len(full):
        raise ConfigError(f"--val-size must be in [0, {len(full)}), got {val_size}")
    val_idx, train_idx = stratified_split(full.labels, val_size, seed)
    splits = {"train": _subset(full, train_idx), "val": _subset(full, val_idx), "test": test}
    mean, std = channel_stats(splits["train"].images)
    out.mkdir(parents=True, exist_ok=True)
    for name, s in splits.items():
        save_image_set(s, out / f"{name}.safetensors")
    meta = {
        "dataset": "fashion-mnist",
        "classes": CLASSES,
        "sizes": {name: len(s) for name, s in splits.items()},
        "image_shape": list(full.images.shape[1:]),  # (C, H, W)
        "mean": mean, "std": std,  # per channel, of pixel / 255 over the train split
        "val_size": val_size, "seed": seed,
        "source": str(source.resolve()),
    }
    tmp = out / f".meta.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, out / "meta.json")  # written last: its presence means the folder is complete
    return meta


def stratified_split(labels: Tensor, size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Indices (held out, rest), each sorted, holding out `size` items with every class's share kept.

    Class c gives floor(size * n_c / N) items, plus one for the classes with the largest remainders
    until the total is `size`; which items is a seeded random choice within each class.
    """
    n = len(labels)
    counts = torch.bincount(labels)
    exact = counts.double() * size / n
    quota = exact.floor().long()
    extra = size - int(quota.sum())
    quota[torch.argsort(exact - quota, descending=True, stable=True)[:extra]] += 1
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    by_class = perm[torch.sort(labels[perm], stable=True).indices]  # grouped by class, random within a class
    starts = torch.cumsum(counts, 0) - counts  # (num_classes,) first position of each class in by_class
    sorted_labels = labels[by_class]
    rank = torch.arange(n) - starts[sorted_labels]  # rank of each item within its class
    held = rank < quota[sorted_labels]
    return by_class[held].sort().values, by_class[~held].sort().values


def channel_stats(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of pixel / 255 over uint8 images (N, C, H, W), exact (from histograms)."""
    mean, std = [], []
    values = torch.arange(256, dtype=torch.float64) / 255
    for c in range(images.size(1)):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        m = float((hist * values).sum() / hist.sum())
        var = float((hist * (values - m) ** 2).sum() / hist.sum())
        mean.append(round(m, 6))
        std.append(round(var ** 0.5, 6))
    return mean, std


def load_split(folder: str | Path, split: str, *, channels: int | None = None,
               size: int | tuple[int, int] | None = None) -> ImageSet:
    """One split of an image dataset in any layout nanofm reads:

    a prepared folder (meta.json + <split>.safetensors), an image-folder tree (folder/<split>/<class>/*.png),
    CIFAR-10 python batches (train, test), or IDX files (train-/t10k-images-idx3-ubyte[.gz]; train, test).
    channels and size apply to image folders only.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if (folder / "meta.json").is_file():
        path = folder / f"{split}.safetensors"
        if not path.is_file():
            have = sorted(p.stem for p in folder.glob("*.safetensors"))
            raise DataError(f"{folder}: no split '{split}' (it has {', '.join(have) or 'none'})")
        return load_image_set(path)
    if (folder / split).is_dir():
        return load_image_folder(folder / split, channels, size)
    for cifar in (folder, folder / "cifar-10-batches-py"):
        if (cifar / "batches.meta").is_file():
            _check_train_test(folder, split, "CIFAR-10")
            return load_cifar10(cifar, split)
    if _idx_path(folder, IDX_FILES["train"][0]) or _idx_path(folder, IDX_FILES["test"][0]):
        _check_train_test(folder, split, "IDX")
        images, labels = (_idx_path(folder, name) for name in IDX_FILES[split])
        if images is None or labels is None:
            raise FileNotFoundError(f"{folder}: no IDX files {' and '.join(IDX_FILES[split])}[.gz]")
        return load_idx(images, labels)
    raise DataError(f"{folder}: no image dataset for split '{split}' (expected meta.json + {split}.safetensors, "
                     f"{split}/<class>/ image folders, CIFAR-10 python batches, or IDX files)")


def _check_train_test(folder: Path, split: str, kind: str) -> None:
    if split not in IDX_FILES:
        raise DataError(f"{folder}: {kind} data has splits 'train' and 'test', not '{split}' "
                         "(prepare a held-out split first, e.g. nanofm data prepare fashion-mnist)")


def _subset(s: ImageSet, idx: Tensor) -> ImageSet:
    return ImageSet(s.images[idx], s.labels[idx], s.classes)


def _idx_path(folder: Path, name: str) -> Path | None:
    """folder/name.gz or folder/name, whichever exists."""
    for path in (folder / f"{name}.gz", folder / name):
        if path.is_file():
            return path
    return None
