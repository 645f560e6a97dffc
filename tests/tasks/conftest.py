"""A tiny pretrained BERT shared by the pretraining and fine-tuning tests."""

import random
from pathlib import Path

import pytest

from nanofm.cli import main
from nanofm.text.wordpiece import train_wordpiece

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


