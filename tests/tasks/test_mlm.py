"""Masked-language-model pretraining end to end on a tiny Spanish corpus: pretrain, metrics, fill-mask."""

import json

from nanofm.cli import main
from nanofm.families.bert.pretrain import FillMask

from tests.tasks.conftest import CONFIG, VERBS


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
