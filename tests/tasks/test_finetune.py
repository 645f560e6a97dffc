"""Fine-tuning the tiny pretrained BERT: classification and tagging task folders, label alignment, sentence
pairs with segment ids, entity F1 (against seqeval), the pretrained weights really loaded, and the from-scratch
baseline."""

import json
import random
from pathlib import Path

import pytest
import torch
import yaml

from nanofm.cli import main
from nanofm.core.output import IGNORE_INDEX
from nanofm.data import PadCollate
from nanofm.data.spanish_tasks import Example, TaggedSentence, TaskData, load_task
from nanofm.engine.checkpoint import pick_checkpoint, read_state_dict
from nanofm.families import get_config
from nanofm.families.bert.finetune import bio_entities, encode_examples, entity_scores, predict
from nanofm.families.bert.model import BertForSequenceClassification
from nanofm.text.wordpiece import WordPieceTokenizer

from tests.tasks.conftest import SENTENCES

FORMATS = Path(__file__).parents[1] / "fixtures" / "benchmark-formats"
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


@pytest.mark.filterwarnings("ignore::UserWarning")  # seqeval: precision undefined without predicted entities
def test_entity_scores_equal_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    tags = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "B-MISC"]  # I- without B-, type changes
    for _ in range(300):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 10))] for _ in range(rng.randint(1, 4))]
        pred = [[t if rng.random() < 0.6 else rng.choice(tags) for t in g] for g in gold]
        ours = entity_scores(gold, pred)
        theirs = {"precision": seqeval.precision_score(gold, pred), "recall": seqeval.recall_score(gold, pred),
                  "entity_f1": seqeval.f1_score(gold, pred)}
        assert ours == pytest.approx(theirs, abs=1e-12), (gold, pred)


def _pair_task(pairs: list[Example]) -> TaskData:
    return TaskData("pairs", "classification", "accuracy", sorted({ex.label for ex in pairs}), False, {"train": pairs})


def test_pairs_are_encoded_with_segment_ids(pretrained):
    tok = WordPieceTokenizer.load(pretrained / "tokenizer.json")
    a, b = SENTENCES[0], SENTENCES[1]
    ids_a, ids_b = tok.encode(a).ids[1:-1], tok.encode(b).ids[1:-1]
    single, pair = encode_examples(_pair_task([Example(a, "0"), Example(a, "1", b)]), "train", tok, 32)
    (short,) = encode_examples(_pair_task([Example(a + " " + a, "1", b)]), "train", tok, 2 * len(ids_b) + 3)
    assert pair["tokens"].tolist() == [tok.cls_id, *ids_a, tok.sep_id, *ids_b, tok.sep_id]
    assert pair["segments"].tolist() == [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
    assert single["segments"].tolist() == [0] * len(single["tokens"])
    # too long: the longer text (a twice) is cut down to b's length, b is kept whole
    assert short["tokens"].tolist() == [tok.cls_id, *(ids_a * 2)[: len(ids_b)], tok.sep_id, *ids_b, tok.sep_id]
    assert short["segments"].tolist() == [0] * (len(ids_b) + 2) + [1] * (len(ids_b) + 1)


def test_pair_classifier_overfits_a_batch(pretrained):
    """The verb of the second sentence: every sentence is on both sides, so the model must tell a from b."""
    tok = WordPieceTokenizer.load(pretrained / "tokenizer.json")
    task = _pair_task([Example(a, b.split()[2], b) for a in SENTENCES for b in SENTENCES])
    data = encode_examples(task, "train", tok, 32)
    collate = PadCollate({"tokens": tok.pad_id, "segments": 0, "targets": IGNORE_INDEX})
    batch = collate(data)
    assert batch["segments"].max() == 1
    torch.manual_seed(0)
    model = BertForSequenceClassification(get_config("bert-tiny-debug", vocab_size=tok.vocab_size, n_labels=len(task.labels)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert torch.equal(torch.stack(predict(model, data, collate)), batch["targets"])


@pytest.mark.parametrize("fmt", ["pawsx", "conll2002"])
def test_finetune_cli_on_benchmark_format_folders(pretrained, fmt, tmp_path, capsys):
    out = tmp_path / "ft"
    args = ["finetune", str(pretrained), "--task", str(FORMATS / fmt), "--out", str(out), "train.steps=2",
            "train.batch_size=2", "train.warmup_steps=1", "train.eval_every=2", "train.save_every=2", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    metric = {"pawsx": "accuracy", "conll2002": "entity_f1"}[fmt]
    assert f"fine-tuning {fmt} (" in printed and f"metric {metric}" in printed and f"test: {metric} " in printed


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
            "--out", str(out), "--seeds", "2", "train.epochs=null", "train.steps=20", "train.batch_size=16",
            "train.warmup_steps=5", "train.eval_every=10", "train.save_every=10", "train.lr=3e-3"]
    assert main(args) == 0
    table = (out / "table.md").read_text()
    result = json.loads((out / "table.json").read_text())
    assert [r["task"] for r in result["rows"]] == ["verbo", "ner"]
    assert result["columns"] == ["run (pretrained)", "run architecture, random weights"]
    assert "| verbo | accuracy (test) |" in table and "| ner | entity_f1 (test) |" in table and "**" in table
    assert "Mean gain of pretraining" in table and "averaged over 2 seeds" in table and "BETO-cased" in table
    assert table in capsys.readouterr().out
    # seed 0 in out itself (a one-seed table's layout), seed 1 in out/seed1 with train.seed moved by 1
    assert yaml.safe_load((out / "verbo/column0/config.yaml").read_text())["train"]["seed"] == 0
    assert yaml.safe_load((out / "seed1/verbo/column0/config.yaml").read_text())["train"]["seed"] == 1
    for row in result["rows"]:
        for col, scores in row["seed_scores"].items():
            assert len(scores) == 2 and row["scores"][col] == pytest.approx(sum(scores) / 2)
    gains = [r["seed_scores"][result["columns"][0]][1] - r["seed_scores"][result["columns"][1]][1] for r in result["rows"]]
    assert "| mean of the tasks | " in table and f"{sum(gains) / 2:+.2f} |" in table  # seed 1's mean gain


def test_benchmark_beto_rejects_zero_seeds(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "beto", str(tmp_path), "--seeds", "0"])
    assert "--seeds" in capsys.readouterr().err


def test_few_labels_are_a_seeded_choice_shared_by_both_columns(pretrained, tasks):
    """data.labels=12: 12 of the 80 training examples, the same 12 from pretrained and random weights (one
    seed), others with another seed; more than there are means all. Catches: the columns of a table fine-tuned
    on different examples (the gain would measure the subset), the first n examples taken, an error for 'all'."""
    from nanofm.config import from_dict
    from nanofm.tasks import build_task
    from nanofm.families.bert.finetune import FinetuneTaskConfig, finetune_config

    def chosen(scratch: bool, *over: str) -> list[list[int]]:
        data = finetune_config(pretrained, str(tasks[0]), scratch)
        for o in over:
            key, value = o.split("=")
            section, name = key.split(".")
            data[section][name] = int(value)
        return [e["tokens"].tolist() for e in build_task(from_dict(FinetuneTaskConfig, data)).train_data]

    few = chosen(False, "data.labels=12")
    everything = chosen(False)
    assert len(few) == 12 and few == chosen(True, "data.labels=12")
    assert few != everything[:12]
    assert chosen(False, "data.labels=12", "train.seed=1") != few
    assert len(chosen(False, "data.labels=1000")) == len(everything) == 80



def test_dev_size_bounds_the_evaluation_set_with_one_choice_for_every_run(pretrained, tasks):
    """data.dev_size=7: 7 of the dev examples, the same 7 from pretrained and random weights and from any
    train.seed, not the first 7; the test split whole. Catches: the bound ignored (a short run's evaluations
    eat its budget), runs of one table scored on different dev examples, the test split cut too."""
    from nanofm.config import from_dict
    from nanofm.tasks import build_task
    from nanofm.families.bert.finetune import FinetuneTaskConfig, finetune_config

    def parts(scratch: bool, **over: int):
        data = finetune_config(pretrained, str(tasks[0]), scratch)
        for key, value in over.items():
            section, name = key.split("__")
            data[section][name] = value
        built = build_task(from_dict(FinetuneTaskConfig, data))
        return [e["tokens"].tolist() for e in built.eval_data], len(built.test_data)

    (few, n_test), (everything, n_test_all) = parts(False, data__dev_size=7), parts(False)
    assert len(few) == 7 < len(everything) and few != everything[:7] and n_test == n_test_all
    assert few == parts(True, data__dev_size=7)[0] == parts(False, data__dev_size=7, train__seed=3)[0]
    assert all(e in everything for e in few)

# ---------------------------------------------------------------- using a fine-tuned run: nanofm.load, predict


@pytest.fixture(scope="module")
def tuned(pretrained, tasks, tmp_path_factory):
    """The fine-tuned classifier (label: the verb) and NER tagger, trained on task folders that are then moved
    away: what the runs need to be used must travel with them."""
    tmp = tmp_path_factory.mktemp("tuned")
    runs = []
    for task in tasks:
        moved = tmp / f"{task.name}-task"
        moved.mkdir()
        for f in task.iterdir():
            (moved / f.name).write_bytes(f.read_bytes())
        run = tmp / task.name
        assert main(["finetune", str(pretrained), "--task", str(moved), "--out", str(run), *FAST]) == 0
        for f in moved.iterdir():
            f.unlink()
        moved.rmdir()
        runs.append(run)
    return runs


def test_load_gives_a_text_classifier_with_the_training_predictions(tuned, tasks):
    import nanofm
    from nanofm.families.bert.finetune import TextClassifier

    clf = nanofm.load(tuned[0], device="cpu")
    assert isinstance(clf, TextClassifier)
    card = (tuned[0] / "README.md").read_text()  # the card's example runs as it says
    assert f'nanofm.load("{tuned[0]}")' in card and "test: accuracy" in card
    task = load_task(tasks[0])
    assert clf.labels == task.labels  # from the run's labels.json: the task folder it was trained on is gone
    tok = WordPieceTokenizer.load(tuned[0] / "tokenizer.json")
    test = encode_examples(task, "test", tok, 32)
    expected = [task.labels[int(p)] for p in predict(clf.model, test, PadCollate({"tokens": tok.pad_id, "segments": 0, "targets": IGNORE_INDEX}))]
    texts = [ex.text for ex in task.splits["test"]]
    got = clf(texts, k=1)
    assert [r[0][0] for r in got] == expected  # the same answers as the training code's scoring (label order, inputs)
    assert sum(r[0][0] == ex.label for r, ex in zip(got, task.splits["test"])) / len(texts) > 0.9  # learned: the verb
    one = clf(texts[0])
    assert len(one) == len(task.labels) and abs(sum(p for _, p in one) - 1) < 1e-5  # all labels, probabilities
    assert [p for _, p in one] == sorted((p for _, p in one), reverse=True)
    assert one[0][0] == got[0][0][0] and abs(one[0][1] - got[0][0][1]) < 1e-5  # alone = in a padded batch


def test_load_gives_a_tagger_of_words_and_entities(tuned):
    import nanofm
    from nanofm.families.bert.finetune import TokenTagger

    tagger = nanofm.load(tuned[1], device="cpu")
    assert isinstance(tagger, TokenTagger)
    assert tagger("La niña lee un libro.") == [("La", "B-PER"), ("niña", "I-PER"), ("lee", "O"), ("un", "O"),
                                               ("libro", "O"), (".", "O")]  # words split off the full stop
    assert tagger.entities("La capital tiene un río.") == [("La capital", "LOC")]
    words = ["Mi", "madre", "escribe", "la", "carta", "."]  # already split: taken as they are
    assert tagger(["El niño come pan.", words])[1] == [(w, t) for w, t in zip(words, ["B-PER", "I-PER", "O", "O", "O", "O"])]


def test_predict_cli_and_pipeline_on_fine_tuned_runs(tuned, tmp_path, capsys):
    import nanofm
    from nanofm.config import ConfigError

    assert main(["predict", str(tuned[0]), "La niña lee un libro.", "-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("La niña lee un libro.: lee ") and line.count(",") == 1  # was: no command at all
    assert main(["predict", str(tuned[1]), "El señor mira el árbol."]) == 0
    assert capsys.readouterr().out.strip() == "El/B-PER señor/I-PER mira/O el/O árbol/O ./O"
    with pytest.raises(ConfigError, match="a text-classification model, not token-classification"):
        nanofm.pipeline("token-classification", tuned[0])
    hf = tmp_path / "hf"
    assert main(["convert", "--to-hf", str(tuned[0]), str(hf)]) == 0
    capsys.readouterr()
    from_run, from_hf = nanofm.load(tuned[0], device="cpu"), nanofm.pipeline("text-classification", hf, device="cpu")
    a, b = from_run("Mi madre escribe la carta."), from_hf("Mi madre escribe la carta.")
    assert [n for n, _ in a] == [n for n, _ in b] and max(abs(p - q) for (_, p), (_, q) in zip(a, b)) < 1e-5
