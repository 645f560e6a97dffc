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


def test_fill_mask_batch_equals_each_text_through_the_whole_head(pretrained):
    """A batch of texts of different lengths, one with two masks, in one padded forward pass with the head at
    the masks only, gives each text's answers as the model's plain path does on that text alone (the head at
    every position, no padding). Catches: padding read by attention, a mask's row taken from another text,
    the masks of a two-mask text swapped or merged, probabilities from the padded row."""
    import torch

    fill = FillMask.load(pretrained)
    texts = ["El niño [MASK] un libro.", "La [MASK] [MASK] pan.", "El [MASK]."]
    batch = fill(texts, k=4)
    for text, got in zip(texts, batch):
        ids = fill.tok.encode(text).ids
        masks = [i for i, t in enumerate(ids) if t == fill.tok.mask_id]
        with torch.no_grad():
            probs = fill.model(torch.tensor([ids])).logits[0, masks].softmax(-1)  # (M, V)
        top = probs.topk(4, dim=-1)
        assert [[w for w, _ in c] for c in got] == [fill.tok.tokens(i.tolist()) for i in top.indices]
        assert torch.allclose(torch.tensor([[q for _, q in c] for c in got]), top.values, atol=1e-5)
    alone = fill(texts[1], k=4)  # one text in: its list of masks (a batch of one: equal up to float rounding)
    assert len(batch[1]) == len(alone) == 2 and [[w for w, _ in c] for c in alone] == [[w for w, _ in c] for c in batch[1]]
