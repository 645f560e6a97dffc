"""Fine-tuning the tiny pretrained BERT: classification and tagging task folders, label alignment, entity F1,
the pretrained weights really loaded, and the from-scratch baseline."""

import json
import random
from pathlib import Path

import pytest
import torch

from nanofm.cli import main
from nanofm.data.spanish_tasks import TaggedSentence, load_task
from nanofm.models import IGNORE_INDEX
from nanofm.tasks.finetune import bio_entities, encode_examples
from nanofm.text.wordpiece import WordPieceTokenizer
from nanofm.train.checkpoint import pick_checkpoint, read_state_dict

from tests.tasks.conftest import SENTENCES

ENTITIES = {"El niño": "PER", "La niña": "PER", "Mi madre": "PER", "El señor": "PER", "La capital": "LOC"}
FAST = ["train.steps=60", "train.batch_size=16", "train.warmup_steps=5", "train.eval_every=30", "train.save_every=30",
        "train.lr=3e-3", "--no-progress"]


def _task_dirs(tmp_path: Path) -> tuple[Path, Path]:
    rng = random.Random(1)
    cls_dir, tag_dir = tmp_path / "verbo", tmp_path / "ner"
    for d, kind, metric in ((cls_dir, "classification", "accuracy"), (tag_dir, "tagging", "entity_f1")):
        d.mkdir()
        (d / "task.json").write_text(json.dumps({"kind": kind, "metric": metric}))
    for split, n in (("train", 80), ("dev", 20), ("test", 20)):
        sents = [rng.choice(SENTENCES) for _ in range(n)]
        (cls_dir / f"{split}.tsv").write_text("".join(f"{s.split()[2]}\t{s}\n" for s in sents))  # label: the verb
        rows = []
        for s in sents:
            subject = " ".join(s.split()[:2])
            words = s.rstrip(".").split() + ["."]
            tags = [f"B-{ENTITIES[subject]}", f"I-{ENTITIES[subject]}"] + ["O"] * (len(words) - 2)
            rows.append("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n")
        (tag_dir / f"{split}.tsv").write_text("".join(rows))
    return cls_dir, tag_dir


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    return _task_dirs(tmp_path_factory.mktemp("tasks"))


def test_bio_entities():
    assert bio_entities(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]) == {(0, 2, "PER"), (3, 4, "LOC"), (4, 5, "LOC"), (5, 6, "ORG")}
    assert bio_entities(["O", "O"]) == set()


def test_tags_go_on_first_sub_words(pretrained, tasks):
    tok = WordPieceTokenizer.load(pretrained / "tokenizer.json")
    task = load_task(tasks[1])
    task.splits["train"][:] = [TaggedSentence(["El", "señoríos", "."], ["B-PER", "I-PER", "O"])]
    (ex,) = encode_examples(task, "train", tok, 32)
    enc = tok.encode_words(["El", "señoríos", "."])
    assert len(enc.ids) > 5  # "señoríos" is split into several pieces by the tiny vocabulary
    first = [i for i, w in enumerate(enc.word_ids) if w is not None and (i == 0 or enc.word_ids[i - 1] != w)]
    labelled = (ex["targets"] != IGNORE_INDEX).nonzero().flatten().tolist()
    assert labelled == first
    assert [task.labels[t] for t in ex["targets"][labelled].tolist()] == ["B-PER", "I-PER", "O"]


@pytest.mark.parametrize("which", [0, 1], ids=["classification", "tagging"])
def test_finetune_cli_learns_the_task(pretrained, tasks, which, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", str(pretrained), "--task", str(tasks[which]), "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "from pretrained weights" in printed and "test: " in printed
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "eval/score" in line]
    assert evals[-1]["eval/score"] > 0.9
    if which == 1:
        assert "eval/entity_f1" in evals[-1] and "eval/precision" in evals[-1]


def test_finetune_starts_from_the_pretrained_encoder_or_from_scratch(pretrained, tasks, tmp_path):
    pre = read_state_dict(pick_checkpoint(pretrained, "best") / "model.safetensors")
    for flag, same in (([], True), (["--from-scratch"], False)):
        out = tmp_path / f"ft{len(flag)}"
        assert main(["finetune", str(pretrained), "--task", str(tasks[0]), "--out", str(out), *flag,
                     "train.steps=1", "train.lr=1e-9", "--no-progress"]) == 0
        tuned = read_state_dict(pick_checkpoint(out, "latest") / "model.safetensors")
        key = "bert.encoder.layers.0.ff.fc1.weight"
        assert torch.allclose(tuned[key], pre[key], atol=1e-6) == same


def test_finetune_needs_a_pretraining_run(tasks, tmp_path, capsys):
    assert main(["finetune", str(tmp_path), "--task", str(tasks[0])]) != 0
    assert "config.yaml" in capsys.readouterr().err


def test_benchmark_beto_table(pretrained, tasks, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["benchmark", "beto", str(pretrained), "--tasks", "verbo,ner", "--tasks-dir", str(tasks[0].parent),
            "--out", str(out), "train.budget=null", "train.steps=30", "train.batch_size=16", "train.warmup_steps=5",
            "train.eval_every=15", "train.save_every=15", "train.lr=3e-3"]
    assert main(args) == 0
    table = (out / "table.md").read_text()
    result = json.loads((out / "table.json").read_text())
    assert [r["task"] for r in result["rows"]] == ["verbo", "ner"]
    assert result["columns"] == ["run (pretrained)", "run architecture, random weights"]
    assert "| verbo | accuracy (test) |" in table and "| ner | entity_f1 (test) |" in table and "**" in table
    assert "Mean gain of pretraining" in table and "BETO-cased" in table
    assert table in capsys.readouterr().out
