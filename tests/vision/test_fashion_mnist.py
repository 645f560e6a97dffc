import json

import pytest
import torch
from PIL import Image

from nanofm.cli import main
from nanofm.data.fashion_mnist import CLASSES, load_split, prepare_fashion_mnist, stratified_split
from nanofm.vision import load_image_set

from .fakes import write_fake_cifar10, write_fake_fashion_mnist


def test_prepare_split_sizes_stratified_deterministic(tmp_path):
    source = write_fake_fashion_mnist(tmp_path / "src", n_train=40, n_test=10)
    meta = prepare_fashion_mnist(tmp_path / "a", source, val_size=10, seed=3)
    assert meta["sizes"] == {"train": 30, "val": 10, "test": 10} and meta["classes"] == CLASSES
    assert meta["image_shape"] == [1, 28, 28] and 0.4 < meta["mean"][0] < 0.6 and 0.2 < meta["std"][0] < 0.4
    assert json.loads((tmp_path / "a" / "meta.json").read_text()) == meta
    train, val = load_split(tmp_path / "a", "train"), load_split(tmp_path / "a", "val")
    assert torch.bincount(val.labels).tolist() == [1] * 10 and torch.bincount(train.labels).tolist() == [3] * 10
    assert val.classes == CLASSES and train.images.shape == (30, 1, 28, 28)
    prepare_fashion_mnist(tmp_path / "b", source, val_size=10, seed=3)
    for name in ("train.safetensors", "val.safetensors", "test.safetensors", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = prepare_fashion_mnist(tmp_path / "c", source, val_size=10, seed=4)
    assert other["sizes"] == meta["sizes"]
    assert not torch.equal(load_split(tmp_path / "c", "val").images, val.images)


def test_stratified_split_keeps_shares():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    held, rest = stratified_split(labels, 10, seed=0)
    assert torch.bincount(labels[held]).tolist() == [5, 3, 2] and len(rest) == 90
    assert sorted(torch.cat([held, rest]).tolist()) == list(range(100))
    held7, _ = stratified_split(labels, 7, seed=0)  # 3.5, 2.1, 1.4 -> 3 + 2 + 1, one more to the largest remainder
    assert torch.bincount(labels[held7]).tolist() == [4, 2, 1]


def test_missing_source_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        prepare_fashion_mnist(tmp_path / "out", tmp_path / "nowhere")


def test_load_split_layouts(tmp_path):
    idx = write_fake_fashion_mnist(tmp_path / "idx", n_train=20, n_test=10)
    assert len(load_split(idx, "train")) == 20 and load_split(idx, "test").images.shape == (10, 1, 28, 28)
    with pytest.raises(ValueError, match="not 'val'"):
        load_split(idx, "val")
    cifar = write_fake_cifar10(tmp_path / "cifar" / "cifar-10-batches-py", per_batch=2)
    assert load_split(cifar, "train").images.shape == (10, 3, 32, 32)
    assert len(load_split(cifar.parent, "test")) == 2  # the folder the tarball extracts into works too
    tree = tmp_path / "tree" / "val" / "cat"
    tree.mkdir(parents=True)
    Image.new("L", (4, 4)).save(tree / "a.png")
    assert load_split(tmp_path / "tree", "val").classes == ["cat"]
    with pytest.raises(ValueError, match=f"{tmp_path / 'tree'}: no image dataset for split 'test'"):
        load_split(tmp_path / "tree", "test")
    prepared = tmp_path / "prepared"
    prepare_fashion_mnist(prepared, idx, val_size=10)
    with pytest.raises(ValueError, match="no split 'dev' .it has test, train, val."):
        load_split(prepared, "dev")


def test_cli_prepare(tmp_path, capsys):
    source = write_fake_fashion_mnist(tmp_path / "src", n_train=40, n_test=10)
    out = tmp_path / "out"
    args = ["data", "prepare", "fashion-mnist", "--source", str(source), "--out", str(out), "--val-size", "20"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}/train.safetensors" in printed and "train 20, val 20, test 10 images of 1x28x28" in printed
    assert len(load_image_set(out / "val.safetensors")) == 20
    assert main(["data", "prepare", "fashion-mnist", "--source", str(tmp_path / "none"), "--out", str(out)]) == 1
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
