import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from nanofm.vision import (
    ImageSet,
    UnsafePickleError,
    load_cifar10,
    load_idx,
    load_image,
    load_image_folder,
    load_image_set,
    read_idx,
    save_image_set,
)

from .fakes import py2_pickle, write_fake_cifar10, write_idx


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / name, images))
    assert out.dtype == torch.uint8 and out.shape == (5, 3, 4) and torch.equal(out, torch.from_numpy(images))
    ints = np.array([-70000, 1, 70000], dtype=np.int32)  # big-endian on disk, native in the tensor
    assert read_idx(write_idx(tmp_path / "i.idx", ints)).tolist() == ints.tolist()


def test_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x01\x02\x08\x01" + b"\0" * 8)
    with pytest.raises(ValueError, match=f"{bad}: not an IDX file"):
        read_idx(bad)
    short = write_idx(tmp_path / "short-idx", np.zeros((4, 2, 2), np.uint8))
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(ValueError, match=f"{short}: IDX dims .* the file has 29"):
        read_idx(short)


def test_load_idx_adds_the_channel_and_checks_counts(tmp_path):
    images = write_idx(tmp_path / "images.gz", np.zeros((6, 7, 8), np.uint8))
    labels = write_idx(tmp_path / "labels.gz", np.array([0, 1, 2, 2, 1, 0], np.uint8))
    s = load_idx(images, labels)
    assert s.images.shape == (6, 1, 7, 8) and s.labels.dtype == torch.int64 and s.classes == ["0", "1", "2"]
    assert len(s) == 6 and load_idx(images, labels, ["a", "b", "c"]).classes == ["a", "b", "c"]
    few = write_idx(tmp_path / "few.gz", np.array([0, 1], np.uint8))
    with pytest.raises(ValueError, match=f"{images} holds 6 images but {few} 2 labels"):
        load_idx(images, few)


def _save(img: Image.Image, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def test_load_image_modes(tmp_path):
    grey = _save(Image.new("L", (5, 3), 77), tmp_path / "grey.png")
    rgb = _save(Image.new("RGB", (5, 3), (10, 20, 30)), tmp_path / "rgb.jpg")
    rgba = Image.new("RGBA", (2, 1), (200, 0, 0, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 0))  # fully transparent: white after compositing
    rgba = _save(rgba, tmp_path / "rgba.png")
    la = _save(Image.new("LA", (2, 2), (0, 128)), tmp_path / "la.png")  # black at half alpha: grey 127
    pal = _save(Image.new("RGB", (2, 2), (0, 255, 0)).convert("P"), tmp_path / "pal.gif")
    assert load_image(grey).shape == (1, 3, 5) and load_image(grey).unique().tolist() == [77]
    assert load_image(rgb).shape == (3, 3, 5)
    assert load_image(rgba)[:, 0, :].T.tolist() == [[200, 0, 0], [255, 255, 255]]
    la_img = load_image(la)
    assert la_img.shape == (1, 2, 2) and abs(int(la_img[0, 0, 0]) - 127) <= 1
    assert load_image(pal)[:, 0, 0].tolist() == [0, 255, 0]
    assert load_image(grey, channels=3).shape == (3, 3, 5) and load_image(grey, channels=3).unique().tolist() == [77]
    assert load_image(rgba, channels=1).shape == (1, 1, 2)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_load_image_applies_the_exif_orientation(tmp_path, suffix):
    """A phone photo stores its pixels sideways with EXIF Orientation 6 ("rotate 90 degrees clockwise to
    show"): loading must give the upright picture, as viewers show it, not the stored array."""
    stored = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 2  # (H=4, W=6, 3): no symmetry
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    path = tmp_path / f"phone{suffix}"
    Image.fromarray(stored).save(path, exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    with Image.open(path) as img:  # the decoded pixels as stored (JPEG is lossy)
        raw = np.asarray(img.convert("RGB"))
    upright = np.rot90(raw, k=-1)  # (6, 4, 3): rotated clockwise
    assert torch.equal(load_image(path), torch.from_numpy(upright.copy()).permute(2, 0, 1))
    assert load_image(path, channels=1).shape == (1, 6, 4)


def test_unreadable_images_name_the_file(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path in (empty, text):
        with pytest.raises(ValueError, match=f"{path}: cannot read image"):
            load_image(path)


def test_image_folder(tmp_path):
    root = tmp_path / "pets"
    _save(Image.new("L", (4, 4), 10), root / "dog" / "a.png")
    _save(Image.new("L", (4, 4), 20), root / "cat" / "b.PNG")
    _save(Image.new("L", (4, 4), 30), root / "cat" / "c.bmp")
    (root / "cat" / "readme.txt").write_text("skipped")
    s = load_image_folder(root)
    assert s.classes == ["cat", "dog"] and s.labels.tolist() == [0, 0, 1]
    assert s.images.shape == (3, 1, 4, 4) and s.images[:, 0, 0, 0].tolist() == [20, 30, 10]
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    _save(rgba, root / "dog" / "d.png")  # one colour image: all become RGB, the transparent one white
    s = load_image_folder(root)
    assert s.images.shape == (4, 3, 4, 4) and s.images[3].unique().tolist() == [255]
    assert torch.equal(s.images[0, 0], s.images[0, 2])  # grey repeated
    _save(Image.new("RGB", (6, 5)), root / "dog" / "e.jpg")
    with pytest.raises(ValueError, match=r"e\.jpg: size \(5, 6\) differs"):
        load_image_folder(root)
    s = load_image_folder(root, channels=1, size=(3, 2))
    assert s.images.shape == (5, 1, 3, 2)
    (root / "dog" / "broken.png").write_bytes(b"")
    with pytest.raises(ValueError, match="broken.png: cannot read image"):
        load_image_folder(root, size=2)


def test_cifar10(tmp_path):
    folder = write_fake_cifar10(tmp_path / "cifar", per_batch=3)
    train, test = load_cifar10(folder, "train"), load_cifar10(folder, "test")
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == torch.uint8 and len(test) == 3
    assert train.classes[:2] == ["airplane", "automobile"] and len(train.classes) == 10
    assert test.labels.tolist() == [5, 6, 7]
    with pytest.raises(ValueError, match="not 'val'"):
        load_cifar10(folder, "val")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar10_refuses_other_globals(tmp_path):
    folder = write_fake_cifar10(tmp_path / "cifar", per_batch=1)
    (folder / "test_batch").write_bytes(py2_pickle({b"data": _Evil()}))
    refused = f"{folder / 'test_batch'}: refusing to load global '(posix|nt).system'"
    with pytest.raises(pickle.UnpicklingError, match=refused):
        load_cifar10(folder, "test")
    with pytest.raises(UnsafePickleError):  # also a ValueError, so the CLI reports it plainly
        load_cifar10(folder, "test")
    (folder / "test_batch").write_bytes(b"\x80\x02}q")  # truncated
    with pytest.raises(ValueError, match="test_batch: not a CIFAR-10 python batch"):
        load_cifar10(folder, "test")


def test_image_set_round_trip(tmp_path):
    s = ImageSet(torch.randint(0, 256, (4, 3, 5, 6), dtype=torch.uint8), torch.tensor([0, 2, 1, 2]), ["a", "b/c", "ü"])
    save_image_set(s, tmp_path / "s.safetensors")
    back = load_image_set(tmp_path / "s.safetensors")
    assert torch.equal(back.images, s.images) and torch.equal(back.labels, s.labels) and back.classes == s.classes
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]  # no temp file left
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.safetensors: not an image set"):
        load_image_set(tmp_path / "bad.safetensors")
