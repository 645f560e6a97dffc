"""The translation task end to end on a tiny fixture corpus: train, evaluate, translate, draw attention."""

from pathlib import Path

import pytest

from nanofm.cli import main
from nanofm.tasks.translation import Translator, score

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "translation-tiny"
TINY = {
    "translate-transformer": ["model.d_model=32", "model.n_heads=2", "model.n_encoder_layers=1",
                              "model.n_decoder_layers=1", "model.d_ff=64", "model.dropout=0.0"],
    "translate-rnn": ["model.d_embed=32", "model.d_hidden=32", "model.d_attn=32", "model.dropout=0.0"],
}


def _data(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.tsv", "valid.tsv", "test.tsv"):
        (data / name).write_text((FIXTURE / name).read_text())
    return data


@pytest.fixture(scope="module", params=["translate-transformer", "translate-rnn"])
def trained(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    data, run = _data(tmp), tmp / "run"
    config = Path(__file__).resolve().parents[2] / "configs" / f"{request.param}-es-en.yaml"
    args = ["train", str(config), f"data.dir={data}", "data.vocab_size=120", "data.bleu_sentences=3",
            "data.test_beam=2", "train.steps=60", "train.batch_size=10", "train.warmup_steps=5",
            "train.eval_every=30", "train.save_every=30", "train.lr=5e-3", *TINY[request.param],
            "--out", str(run), "--no-progress"]
    assert main(args) == 0
    return run


def test_train_writes_tokenizer_and_reports_bleu(trained, capsys):
    assert (trained / "tokenizer.json").is_file()
    assert list(Path(trained.parent / "data").glob("tokenizer-bpe120-*.json"))  # cached beside the data
    assert main(["evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "eval/bleu" in out and "test: BLEU" in out and "nrefs:1" in out  # sacreBLEU signature


def test_translate_cli_and_bad_input(trained, capsys, tmp_path):
    assert main(["translate", str(trained), "Soy estudiante.", "--beam", "1"]) == 0
    assert capsys.readouterr().out.strip()  # some English words
    lines = tmp_path / "in.txt"
    lines.write_text("Soy estudiante.\n\n漢字 ☃\n" + "estudiante " * 400 + "\n")
    assert main(["translate", str(trained), "--file", str(lines)]) == 0
    captured = capsys.readouterr()
    out = captured.out.split("\n")
    assert out[1] == ""  # an empty line stays empty
    assert "line 4 is longer than" in captured.err  # over-long: truncated with a warning
    translator = Translator.load(trained)
    src_tokens = translator.tok.tokens(translator.encode("漢字 ☃")[0].tolist())
    assert "[UNK]" in src_tokens  # unknown characters become [UNK]


def test_show_attention_draws_a_png(trained, tmp_path, capsys):
    png = tmp_path / "attn.png"
    assert main(["translate", str(trained), "Abra el menú Archivo.", "--show-attention", str(png)]) == 0
    assert png.stat().st_size > 5000 and "written to" in capsys.readouterr().err


def test_beam_search_translations_are_deterministic(trained):
    translator = Translator.load(trained)
    a = translator.translate(["Guarde el documento.", "El gato duerme."], beam=3)
    assert a == translator.translate(["Guarde el documento.", "El gato duerme."], beam=3)


def test_sacrebleu_scoring():
    perfect = score(["The cat sleeps.", "I am a student."], ["The cat sleeps.", "I am a student."])
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    assert score(["dog"], ["The cat sleeps."])["bleu"] < 10


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    config = Path(__file__).resolve().parents[2] / "configs" / "translate-rnn-es-en.yaml"
    assert main(["train", str(config), f"data.dir={tmp_path}", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "missing train.tsv, valid.tsv, test.tsv" in err and "nanofm data prepare translation" in err
    (tmp_path / "train.tsv").write_text("hola\thello\nbroken line\n")
    (tmp_path / "valid.tsv").write_text("a\tb\n")
    (tmp_path / "test.tsv").write_text("a\tb\n")
    assert main(["train", str(config), f"data.dir={tmp_path}", "--out", str(tmp_path / "run")]) == 1
    assert f"{tmp_path / 'train.tsv'}:2:" in capsys.readouterr().err
