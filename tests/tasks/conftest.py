"""A tiny pretrained BERT shared by the pretraining and fine-tuning tests."""

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from nanofm.cli import main
from nanofm.data.fashion_mnist import prepare_fashion_mnist
from nanofm.data.scenes import prepare_scenes
from nanofm.text.wordpiece import train_wordpiece
from tests.vision.fakes import write_idx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bert-mini-mlm-es.yaml"
TINY = ["model.d_model=64", "model.n_layers=2", "model.n_heads=2", "model.d_ff=128", "model.max_len=32",
        "model.dropout=0.0", "model.attn_dropout=0.0", "data.max_len=32"]
SENTENCES = ["El niño come pan.", "La niña lee un libro.", "Mi madre escribe la carta.", "El señor mira el árbol.",
             "La capital tiene un río."]  # each word is predictable from the rest of its sentence
VERBS = ["come", "lee", "escribe", "mira", "tiene"]


def _corpus(tmp_path: Path) -> Path:
    rng = random.Random(0)
    doc = lambda: "\n".join(rng.choice(SENTENCES) for _ in range(6))  # noqa: E731
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "train.txt").write_text("\n\n".join(doc() for _ in range(60)) + "\n")
    (data / "valid.txt").write_text("\n\n".join(doc() for _ in range(20)) + "\n")
    train_wordpiece([data / "train.txt"], vocab_size=120, min_frequency=1).save(data)
    return data


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlm")
    data, run = _corpus(tmp), tmp / "run"
    args = ["pretrain", str(CONFIG), f"data.dir={data}", "train.steps=400", "train.batch_size=16", "train.warmup_steps=10",
            "train.eval_every=200", "train.save_every=200", "train.lr=3e-3", "train.schedule=constant", *TINY, "--out", str(run), "--no-progress"]
    assert main(args) == 0
    return run


def _fake_fashion_mnist(src: Path) -> Path:
    """Ten classes of 28x28 images (a bright band whose row is the class, plus noise) in Fashion-MNIST's files."""
    rng = np.random.default_rng(0)
    src.mkdir()
    for prefix, n in (("train", 600), ("t10k", 200)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c : 6 + 2 * c, 4:24] += 180
        write_idx(src / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(src / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return src


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """Every dataset the demo reads, tiny: the fixture translation pairs, a corpus, two tasks, fake images."""
    from tests.tasks.test_finetune import _task_dirs  # a test module's helper: imported once the modules are loaded

    tmp = tmp_path_factory.mktemp("demo-data")
    data = tmp / "data"
    data.mkdir()
    shutil.copytree(FIXTURES / "translation-tiny", data / "translation-es-en")
    _corpus(tmp).rename(data / "corpus-es")
    (data / "beto-tasks").mkdir()
    _task_dirs(data / "beto-tasks")  # a classification task and an NER task the tiny corpus can learn
    src = _fake_fashion_mnist(tmp / "fmnist-src")
    prepare_fashion_mnist(data / "fashion-mnist", src, val_size=50)
    prepare_scenes(data / "fashion-scenes", src, pairs=300, limit=600)
    return data
