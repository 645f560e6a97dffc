"""Masked-language-model pretraining end to end on a tiny Spanish corpus: pretrain, metrics, fill-mask."""

import json
import random
from pathlib import Path

import pytest

from nanofm.cli import main
from nanofm.tasks.mlm import FillMask
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


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlm")
    data, run = _corpus(tmp), tmp / "run"
    args = ["pretrain", str(CONFIG), f"data.dir={data}", "train.steps=400", "train.batch_size=16", "train.warmup_steps=10",
            "train.eval_every=200", "train.save_every=200", "train.lr=3e-3", "train.schedule=constant", *TINY, "--out", str(run), "--no-progress"]
    assert main(args) == 0
    return run


def test_pretraining_learns_and_reports_masked_accuracy(pretrained, capsys):
    rows = [json.loads(line) for line in (pretrained / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    evals = [r for r in rows if "eval/accuracy" in r]
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3])
    assert evals[-1]["eval/accuracy"] > 2 * evals[-1]["eval/baseline_accuracy"]  # well above the frequency baseline
    assert evals[-1]["eval/perplexity"] < 20
    assert (pretrained / "tokenizer.json").is_file()


def test_fill_mask_cli_gives_sensible_top_k(pretrained, capsys):
    assert main(["fill-mask", str(pretrained), "El niño [MASK] un libro.", "-k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "El niño [MASK] un libro." and out[1].startswith("  [MASK] 1: ")
    fill = FillMask.load(pretrained)
    (candidates,) = fill("El niño [MASK] un libro.", k=5)
    assert {tok for tok, _ in candidates} & set(VERBS)  # a verb of the corpus fills the verb slot
    probs = [p for _, p in candidates]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_fill_mask_without_mask_is_a_clear_error(pretrained, capsys):
    assert main(["fill-mask", str(pretrained), "Sin máscara."]) != 0
    assert "no [MASK]" in capsys.readouterr().err


def test_missing_corpus_names_the_folder(tmp_path, capsys):
    assert main(["pretrain", str(CONFIG), f"data.dir={tmp_path}", "--out", str(tmp_path / "run")]) != 0
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "nanofm data prepare corpus" in err
