"""A converted Hugging Face classifier keeps its own labels: `nanofm convert --from-hf` stores the folder's
id2label in the run folder and points at no data folder, so that `--to-hf` gives back the same labels and
outputs, whatever task folder lies at the default data path of the current directory."""

import json

import pytest
import torch
import transformers

from nanofm.cli import main
from nanofm.config import read_file

from .conftest import bert_config, jitter, padded_batch, record

UNRELATED = [f"area-{i}" for i in range(9)]  # the labels of a task folder the model was never trained on


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory holding a 9-label task at FinetuneDataConfig's default data.dir."""
    task = tmp_path / "cwd" / "data" / "beto-tasks" / "libreoffice-area"
    task.mkdir(parents=True)
    (task / "task.json").write_text(json.dumps({"kind": "classification", "labels": UNRELATED}))
    for split in ("train", "dev", "test"):
        (task / f"{split}.tsv").write_text("".join(f"{label}\tuna frase\n" for label in UNRELATED))
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


@pytest.mark.parametrize("name, n_labels", [("BertForSequenceClassification", 5), ("BertForTokenClassification", 7)])
def test_hf_run_hf_keeps_the_folders_labels_and_outputs(name, n_labels, elsewhere, capsys):
    hf_dir, run, back = elsewhere / "hf", elsewhere / "run", elsewhere / "back"
    c = bert_config(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_labels=n_labels)
    original = jitter(getattr(transformers, name)(c))
    original.save_pretrained(hf_dir)  # the default id2label: LABEL_0 ... LABEL_{n-1}
    labels = json.loads((hf_dir / "config.json").read_text())["id2label"]
    assert len(labels) == n_labels
    assert main(["convert", "--from-hf", str(hf_dir), str(run)]) == 0
    capsys.readouterr()
    data, _ = read_file(run / "config.yaml")
    assert data["data"]["dir"] != "data/beto-tasks/libreoffice-area"  # no data folder it was never trained on
    assert main(["convert", "--to-hf", str(run), str(back)]) == 0, capsys.readouterr().err  # was: 9 class names for a head of 5
    exported = json.loads((back / "config.json").read_text())
    assert exported["id2label"] == labels and exported["label2id"] == {v: int(k) for k, v in labels.items()}
    reloaded = getattr(transformers, name).from_pretrained(back).eval()
    tokens, segments, mask = padded_batch(c.vocab_size)
    with torch.no_grad():
        record(f"CLI: Hugging Face -> run -> Hugging Face ({name} logits)",
               reloaded(input_ids=tokens, token_type_ids=segments, attention_mask=mask).logits,
               original(input_ids=tokens, token_type_ids=segments, attention_mask=mask).logits)


def test_named_labels_survive_the_round_trip(elsewhere, capsys):
    names = {0: "negativo", 1: "neutro", 2: "positivo"}
    hf_dir, run, back = elsewhere / "hf", elsewhere / "run", elsewhere / "back"
    jitter(transformers.BertForSequenceClassification(bert_config(id2label=names))).save_pretrained(hf_dir)
    assert main(["convert", "--from-hf", str(hf_dir), str(run)]) == 0
    assert main(["convert", "--to-hf", str(run), str(back)]) == 0, capsys.readouterr().err
    assert transformers.AutoConfig.from_pretrained(back).id2label == names
