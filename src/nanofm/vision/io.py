"""Read image datasets into uint8 tensors: IDX (MNIST, Fashion-MNIST), image folders, CIFAR-10, safetensors.

    s = load_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")   # s.images (N, 1, 28, 28) uint8
    s = load_image_folder("photos", size=64)    # photos/<class>/*.png -> (N, C, 64, 64), classes sorted by name
    s = load_cifar10("cifar-10-batches-py", "test")                            # (10000, 3, 32, 32)
    save_image_set(s, "test.safetensors"); s = load_image_set("test.safetensors")

Every loader returns an ImageSet: images uint8 (N, C, H, W), labels int64 (N,), class names. A file that
cannot be read is a DataError (a ValueError) naming it.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from nanofm.errors import DataError, UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# IDX element types: the third byte of the magic number -> big-endian numpy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class ImageSet:
    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # int64 (N,)
    classes: list[str]  # label i is named classes[i]

    def __len__(self) -> int:
        return self.images.size(0)


# ---- IDX (MNIST-style) --------------------------------------------------------------------------------


def read_idx(path: str | Path) -> Tensor:
    """An IDX file (plain or gzip) as a tensor of its dims, e.g. uint8 (N, 28, 28) for idx3 images."""
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip, whatever the suffix
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: not a readable gzip file ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'none'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX dims {dims} need {expected} bytes, the file has {len(raw)} (truncated?)")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(data.astype(dtype.newbyteorder("="), copy=True))


def load_idx(images_path: str | Path, labels_path: str | Path, classes: list[str] | None = None) -> ImageSet:
    """IDX images (N, H, W) and labels (N,) as an ImageSet of (N, 1, H, W); classes default to '0', '1', ..."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dim() != 3 or images.dtype != torch.uint8:
        raise DataError(f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {tuple(images.shape)}")
    if labels.dim() != 1:
        raise DataError(f"{labels_path}: expected labels (N,), got {tuple(labels.shape)}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    labels = labels.long()
    return ImageSet(images.unsqueeze(1), labels, _check_classes(classes, labels, labels_path))


# ---- single images and image folders ---------------------------------------------------------------


def load_image(path: str | Path, channels: int | None = None) -> Tensor:
    """One image file as uint8 (C, H, W).

    Conversion: grey ('L', '1', 16-bit 'I;16'/'I' scaled to 8 bits) -> 1 channel; 'RGB' -> 3; images
    with transparency ('RGBA', 'LA', 'PA', palette with a transparent colour) are composited on white
    first ('LA' stays grey); palette and other modes (CMYK, YCbCr, ...) -> RGB. `channels` forces 1
    (Pillow's convert('L'), ITU-R 601 luma) or 3 (convert('RGB')). Animated files give their first frame.
    The EXIF orientation is applied (a phone photo stored sideways comes out upright).
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels}")
    try:
        with Image.open(path) as img:
            img = _to_l_or_rgb(ImageOps.exif_transpose(img))  # upright, as viewers show it (phone photos)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read image ({e})") from None
    return _pil_to_tensor(img, channels)


def image_tensor(image: str | Path | Image.Image | np.ndarray | Tensor, channels: int | None = None) -> Tensor:
    """A file path, a Pillow image, or an array (H, W) / (H, W, C) (uint8, or float in [0, 1]) as uint8
    (C, H, W), converted as load_image does; a tensor (C, H, W) uint8 is taken as it is."""
    if isinstance(image, (str, Path)):
        return load_image(image, channels)
    if isinstance(image, Image.Image):
        return _pil_to_tensor(_to_l_or_rgb(ImageOps.exif_transpose(image)), channels)
    if isinstance(image, Tensor) and image.dtype == torch.uint8 and image.ndim == 3:
        return image
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise DataError(f"an image array must be (H, W) or (H, W, C) with C in 1, 3, 4; got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return image_tensor(Image.fromarray(arr), channels)


def _pil_to_tensor(img: Image.Image, channels: int | None) -> Tensor:
    """A Pillow image in mode 'L' or 'RGB' -> uint8 (C, H, W), `channels` forced as load_image says."""
    if channels is not None:
        img = img.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.uint8)  # (H, W) or (H, W, 3)
    return torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1).contiguous()


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
    """A Pillow image in mode 'L' or 'RGB', following load_image's rules."""
    if img.mode in ("L", "RGB"):
        return img
    if img.mode == "1":
        return img.convert("L")
    if img.mode.startswith("I"):  # 16-bit grey (PNG), kept in 'I;16*' or 'I': 0..65535 -> 0..255
        return Image.fromarray((np.asarray(img).astype(np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    if img.mode == "F":
        return Image.fromarray(np.asarray(img).round().clip(0, 255).astype(np.uint8))
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        grey = img.mode in ("LA", "La")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
        return rgb.convert("L") if grey else rgb
    return img.convert("RGB")


def load_image_folder(root: str | Path, channels: int | None = None,
                      size: int | tuple[int, int] | None = None) -> ImageSet:
    """root/<class>/*.{png,jpg,jpeg,bmp,gif,webp} as an ImageSet; classes are the sub-folders, sorted by name.

    All images must share one size unless `size` ((H, W) or one int for square) is given: then each is
    resized with Pillow's bilinear filter. channels=None: 1 if every image is grey, else 3 (grey repeated).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(f, label) for label, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{root}: no images found in {root}/<class>/ (suffixes {', '.join(IMAGE_SUFFIXES)})")
    hw = (size, size) if isinstance(size, int) else size
    images: list[Tensor] = []
    for f, _ in files:
        img = load_image(f, channels)
        if hw is not None and tuple(img.shape[1:]) != tuple(hw):
            img = _resize(img, hw)
        elif images and img.shape[1:] != images[0].shape[1:]:
            raise DataError(f"{f}: size {tuple(img.shape[1:])} differs from {files[0][0]}'s "
                             f"{tuple(images[0].shape[1:])}; pass size=(H, W) to resize")
        images.append(img)
    c = max(img.size(0) for img in images)
    batch = torch.stack([img.expand(c, -1, -1) for img in images])  # grey (1, H, W) repeated to (3, H, W)
    return ImageSet(batch, torch.tensor([label for _, label in files], dtype=torch.long), classes)


def _resize(img: Tensor, hw: tuple[int, int]) -> Tensor:
    """uint8 (C, H, W) -> (C, h, w) with Pillow's bilinear filter."""
    arr = img.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    out = np.asarray(pil.resize((hw[1], hw[0]), Image.BILINEAR), dtype=np.uint8)
    return torch.from_numpy(out.copy()).reshape(hw[0], hw[1], -1).permute(2, 0, 1).contiguous()


# ---- CIFAR-10 (python format) -----------------------------------------------------------------------


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class UnsafePickleError(UserError, pickle.UnpicklingError, ValueError):
    """A pickle that names a global outside the allowed few (a ValueError too, so callers report it plainly)."""


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only plain data and numpy arrays: any other global is refused (pickles can run code)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise UnsafePickleError(f"{self.path}: refusing to load global '{module}.{name}' "
                                         "(only numpy arrays and plain data are allowed)")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return np.ndarray if name == "ndarray" else np.dtype


def _read_cifar_pickle(path: Path) -> dict[str, object]:
    """A CIFAR-10 batch file as a dict with str keys (the files have Python 2 byte-string keys)."""
    try:
        with open(path, "rb") as f:
            data = _CifarUnpickler(f, path).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict, got {type(data).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


def load_cifar10(folder: str | Path, split: str) -> ImageSet:
    """CIFAR-10 python batches (data_batch_1..5 or test_batch, batches.meta) as (N, 3, 32, 32)."""
    folder = Path(folder)
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    if split not in names:
        raise DataError(f"{folder}: CIFAR-10 has splits 'train' and 'test', not '{split}'")
    meta = _read_cifar_pickle(folder / "batches.meta")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
    images, labels = [], []
    for name in names[split]:
        path = folder / name
        batch = _read_cifar_pickle(path)
        data, batch_labels = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path}: expected 'data' as a uint8 array (N, 3072)")
        if batch_labels is None or len(batch_labels) != len(data):
            raise DataError(f"{path}: expected {len(data)} 'labels'")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))  # rows are R plane, G plane, B plane
        labels.append(torch.as_tensor(np.asarray(batch_labels, dtype=np.int64)))
    labels_t = torch.cat(labels)
    return ImageSet(torch.cat(images), labels_t, _check_classes(classes or None, labels_t, folder / "batches.meta"))


# ---- safetensors ------------------------------------------------------------------------------------


def save_image_set(s: ImageSet, path: str | Path) -> None:
    """Write images and labels to one safetensors file (classes in its metadata), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tensors = {"images": s.images.contiguous(), "labels": s.labels.contiguous()}
    save_file(tensors, str(tmp), metadata={"classes": json.dumps(s.classes)})
    os.replace(tmp, path)


def load_image_set(path: str | Path) -> ImageSet:
    """An ImageSet written by save_image_set."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            images, labels = f.get_tensor("images"), f.get_tensor("labels")
    except Exception as e:  # safetensors raises its own error types for bad headers and missing keys
        if isinstance(e, FileNotFoundError):
            raise
        raise DataError(f"{path}: not an image set ({e})") from None
    if "classes" not in meta:
        raise DataError(f"{path}: no 'classes' in the safetensors metadata")
    return ImageSet(images, labels, json.loads(meta["classes"]))


def _check_classes(classes: list[str] | None, labels: Tensor, where: str | Path) -> list[str]:
    """The class names, defaulting to '0'..str(max label); a label out of range is an error."""
    top = int(labels.max()) if len(labels) else -1
    if classes is None:
        return [str(i) for i in range(top + 1)]
    if len(labels) and (top >= len(classes) or int(labels.min()) < 0):
        raise DataError(f"{where}: labels span {int(labels.min())}..{top} but there are {len(classes)} classes")
    return list(classes)
