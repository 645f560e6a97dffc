"""`nanofm convert` both ways, and fill-mask, finetune, benchmark beto and classify on Hugging Face folders
(a BETO-like folder: BertForMaskedLM weights, vocab.txt and tokenizer_config.json only)."""

import json
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image

from nanofm.cli import main
from nanofm.text.wordpiece import train_wordpiece

from .conftest import bert_config, jitter, padded_batch, record

SENTENCES = ["El niño come pan.", "La niña lee un libro.", "Mi madre escribe la carta.", "El señor mira el árbol."]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("beto-like")
    (d / "corpus.txt").write_text("\n".join(SENTENCES * 10), encoding="utf-8")
    tok = train_wordpiece([d / "corpus.txt"], vocab_size=100, min_frequency=1)
    tok.save(d)
    (d / "tokenizer.json").unlink()
    (d / "corpus.txt").unlink()
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}))
    jitter(transformers.BertForMaskedLM(bert_config(vocab_size=tok.vocab_size))).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks") / "verbo"
    d.mkdir()
    (d / "task.json").write_text(json.dumps({"kind": "classification", "metric": "accuracy"}))
    for split, n in (("train", 12), ("dev", 4), ("test", 4)):
        (d / f"{split}.tsv").write_text("".join(f"{s.split()[2]}\t{s}\n" for s in (SENTENCES * 3)[:n]))
    return d


def _fill_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "[MASK] 1:" in line]


def test_convert_both_ways_and_fill_mask(hf_dir, tmp_path, capsys):
    run, back = tmp_path / "run", tmp_path / "back"
    assert main(["convert", "--from-hf", str(hf_dir), str(run)]) == 0
    out = capsys.readouterr().out
    assert "BertForMaskedLM -> nanofm BertForMaskedLM" in out and f"wrote {run}: config.yaml (task mlm), tokenizer.json" in out
    assert main(["fill-mask", str(run), "El niño [MASK] pan."]) == 0
    from_run = _fill_lines(capsys.readouterr().out)
    assert main(["fill-mask", str(hf_dir), "El niño [MASK] pan."]) == 0  # the Hugging Face folder directly
    assert _fill_lines(capsys.readouterr().out) == from_run and len(from_run) == 1
    assert main(["convert", "--to-hf", str(run), str(back)]) == 0
    assert "config.json, model.safetensors, tokenizer.json, vocab.txt, tokenizer_config.json" in capsys.readouterr().out
    card = (back / "README.md").read_text()  # the export's model card says how transformers loads it
    assert "from transformers import AutoModelForMaskedLM" in card and f"Exported from the nanofm run folder `{run}`" in card
    assert "task `mlm`" in (run / "README.md").read_text()  # and the converted run folder has its own
    original = transformers.AutoModelForMaskedLM.from_pretrained(hf_dir).eval()
    exported = transformers.AutoModelForMaskedLM.from_pretrained(back).eval()
    tokens, segments, mask = padded_batch(original.config.vocab_size)
    with torch.no_grad():
        record("CLI: Hugging Face -> run -> Hugging Face (BertForMaskedLM logits)",
               exported(input_ids=tokens, attention_mask=mask).logits, original(input_ids=tokens, attention_mask=mask).logits)
    text = "El señor mira [MASK] árbol."
    assert (transformers.AutoTokenizer.from_pretrained(back)(text)["input_ids"]
            == transformers.BertTokenizer.from_pretrained(hf_dir)(text)["input_ids"])
    assert main(["convert", "--from-hf", str(hf_dir), str(run)]) == 1  # an existing folder is never overwritten silently
    assert "not empty; choose another folder or --overwrite" in capsys.readouterr().err
    assert main(["convert", "--from-hf", str(hf_dir), str(run), "--overwrite"]) == 0  # a run folder: replaced
    assert main(["convert", "--to-hf", str(run), str(back), "--overwrite"]) == 0  # a Hugging Face folder: replaced
    capsys.readouterr()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("x")
    for args in (["--from-hf", str(hf_dir)], ["--to-hf", str(run)]):  # --overwrite used to rmtree whatever OUT was
        assert main(["convert", *args, str(mine), "--overwrite"]) == 1
        assert "holds thesis.txt" in capsys.readouterr().err and (mine / "thesis.txt").read_text() == "x"


def test_finetune_and_benchmark_read_a_hf_folder(hf_dir, task_dir, tmp_path, capsys):
    fast = ["train.batch_size=4", "train.eval_every=3", "train.save_every=3", "train.warmup_steps=1", "--no-progress"]
    ft = tmp_path / "ft"
    assert main(["finetune", str(hf_dir), "--task", str(task_dir), "--out", str(ft), "train.steps=3", *fast]) == 0
    assert f"from pretrained weights {hf_dir}" in capsys.readouterr().out
    assert main(["convert", "--to-hf", str(ft), str(tmp_path / "ft-hf")]) == 0
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "ft-hf").eval()
    assert sorted(hf.config.label2id) == ["come", "escribe", "lee", "mira"]  # the task's labels
    assert main(["convert", "--from-hf", str(tmp_path / "ft-hf"), str(tmp_path / "ft-back")]) == 0
    assert "BertForSequenceClassification -> nanofm BertForSequenceClassification" in capsys.readouterr().out
    bench = tmp_path / "bench"
    args = ["benchmark", "beto", str(hf_dir), "--tasks", "verbo", "--tasks-dir", str(task_dir.parent), "--epochs", "1",
            "--out", str(bench), "train.batch_size=4"]
    assert main(args) == 0
    assert "| verbo | accuracy (test) |" in capsys.readouterr().out and (bench / "table.json").is_file()


def test_vit_folder_converts_and_classifies(tmp_path, capsys):
    c = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                               image_size=28, patch_size=7, num_channels=1, id2label={0: "shirt", 1: "shoe", 2: "bag"})
    hf = jitter(transformers.ViTForImageClassification(c))
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 0
    assert "(task image-classify)" in capsys.readouterr().out
    Image.new("L", (28, 28), 128).save(tmp_path / "grey.png")
    assert main(["classify", str(tmp_path / "run"), str(tmp_path / "grey.png"), "-k", "2"]) == 0
    assert capsys.readouterr().out.count(" 0.") == 2
    assert main(["convert", "--to-hf", str(tmp_path / "run"), str(tmp_path / "back")]) == 0
    assert "preprocessor_config.json, README.md (ViTForImageClassification" in capsys.readouterr().out
    x = torch.randn(2, 1, 28, 28)
    back = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        record("CLI: Hugging Face -> run -> Hugging Face (ViT logits)", back(pixel_values=x).logits, hf(pixel_values=x).logits)
    assert back.config.id2label == {0: "shirt", 1: "shoe", 2: "bag"}


def test_finetune_never_writes_into_a_hf_folder(hf_dir, tmp_path):
    from nanofm.cli import build_parser
    from nanofm.cli.train import _finetune_out

    args = build_parser().parse_args(["finetune", str(hf_dir), "--task", "verbo"])
    assert _finetune_out(args, "finetune-verbo-pretrained") == Path("runs") / f"{hf_dir.name}-finetune-verbo-pretrained"
    run = tmp_path / "run"
    args = build_parser().parse_args(["finetune", str(run), "--task", "verbo"])
    assert _finetune_out(args, "finetune-verbo-pretrained") == run / "finetune-verbo-pretrained"


def test_load_opens_hugging_face_folders_with_their_reference_outputs(hf_dir, tmp_path):
    """nanofm.load on a Hugging Face folder gives transformers' own probabilities: fill-mask (a BETO-like
    folder) and image classification (a ViT folder saved without preprocessor_config.json: mean 0.5, std 0.5)."""
    import nanofm
    from nanofm.families.bert.pretrain import FillMask
    from nanofm.families.vit.task import ImageClassifier

    fill = nanofm.load(hf_dir, device="cpu")
    assert isinstance(fill, FillMask)
    text = "El niño [MASK] pan."
    ref = transformers.BertForMaskedLM.from_pretrained(hf_dir).eval()
    tok = transformers.BertTokenizer.from_pretrained(hf_dir)
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        probs = ref(**enc).logits[0, enc["input_ids"][0].tolist().index(tok.mask_token_id)].softmax(-1)
    top = probs.topk(3)
    got = fill(text, k=3)[0]  # the bug it catches: another tokenizer, a missing head bias, the mask misplaced
    assert [t for t, _ in got] == tok.convert_ids_to_tokens(top.indices.tolist())
    assert max(abs(p - q) for (_, p), q in zip(got, top.values.tolist())) < 1e-4

    c = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                               image_size=28, patch_size=7, num_channels=1, id2label={0: "shirt", 1: "shoe", 2: "bag"})
    vit = jitter(transformers.ViTForImageClassification(c)).eval()
    vit.save_pretrained(tmp_path / "vit")
    pixels = (torch.arange(28 * 28).reshape(28, 28) % 256).to(torch.uint8).numpy()
    clf = nanofm.pipeline("image-classification", tmp_path / "vit", device="cpu")
    assert isinstance(clf, ImageClassifier)
    with torch.no_grad():
        ref_probs = vit(pixel_values=(torch.from_numpy(pixels).float()[None, None] / 255 - 0.5) / 0.5).logits[0].softmax(-1)
    got = dict(clf(pixels, k=3))  # an array in, as a user's numpy image
    assert max(abs(got[c.id2label[i]] - p) for i, p in enumerate(ref_probs.tolist())) < 1e-4
