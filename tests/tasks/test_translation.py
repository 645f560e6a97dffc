"""The translation task end to end on a tiny fixture corpus: train, evaluate, translate, draw attention."""

import json
import re
from pathlib import Path

import pytest
import torch

from nanofm.cli import main
from nanofm.families.seq2seq.translation import Translator, score

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


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["translate-transformer", "translate-rnn"])
def trained(request, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats two contending ones on a busy machine
    try:
        yield _train(request.param, tmp_path_factory.mktemp(request.param))
    finally:
        torch.set_num_threads(threads)


def _train(task: str, tmp: Path) -> Path:
    data, run = _data(tmp), tmp / "run"
    config = Path(__file__).resolve().parents[2] / "configs" / f"{task}-es-en.yaml"
    args = ["train", str(config), f"data.dir={data}", "data.vocab_size=120", "data.bleu_sentences=3",
            "data.test_beam=2", "train.steps=60", "train.batch_size=10", "train.warmup_steps=5",
            "train.eval_every=30", "train.save_every=30", "train.lr=5e-3", *TINY[task],
            "--out", str(run), "--no-progress"]
    assert main(args) == 0
    return run


def test_training_lowers_the_loss(trained):
    """60 steps on the 30 fixture pairs: the training loss falls at every logged step (20, 40, 60) and ends
    well below where it began, and the held-out loss falls between the two evaluations. Catches a model
    that does not learn at all (a broken optimizer step, targets not shifted against the inputs, a frozen
    model)."""
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in records if "loss" in r]
    held_out = [r["eval/loss"] for r in records if "eval/loss" in r]
    assert len(train) == 3 and train[0] > train[1] > train[2] and train[2] < 0.8 * train[0], train
    assert len(held_out) == 2 and held_out[1] < held_out[0], held_out


NUMBERS = [("uno", "one"), ("dos", "two"), ("tres", "three"), ("cuatro", "four"), ("cinco", "five"), ("seis", "six"),
           ("siete", "seven"), ("ocho", "eight")]


@pytest.mark.parametrize("task", ["translate-transformer", "translate-rnn"])
def test_a_tiny_model_learns_a_word_for_word_mapping(task, tmp_path):
    """Eight Spanish number words to English ones, 40 steps through `nanofm train`: the model then translates
    every one of them exactly (greedy and beam search). Catches any break between data, tokenizer, model,
    training and decoding that keeps a model from learning the simplest mapping."""
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.tsv").write_text("".join(f"{es}\t{en}\n" for es, en in NUMBERS))
    config = Path(__file__).resolve().parents[2] / "configs" / f"{task}-es-en.yaml"
    assert main(["train", str(config), f"data.dir={data}", "data.vocab_size=60", "data.bleu_sentences=8", "data.test_beam=1",
                 "train.steps=40", "train.batch_size=8", "train.warmup_steps=5", "train.lr=1e-2", "train.group_by_length=false",
                 "train.eval_every=0", "train.save_every=0", "model.label_smoothing=0.0", *TINY[task],
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    translator = Translator.load(tmp_path / "run")
    sources, targets = [es for es, _ in NUMBERS], [en for _, en in NUMBERS]
    assert translator.translate(sources, beam=1) == targets
    assert translator.translate(sources, beam=3) == targets


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


TINY_CONFIGS = {
    "translate-rnn": "model: {d_embed: 32, d_hidden: 32, d_attn: 32, dropout: 0.0}",
    "translate-transformer": "model: {d_model: 32, n_heads: 2, n_encoder_layers: 1, n_decoder_layers: 1, d_ff: 64, dropout: 0.0}",
}


def test_compare_translation_table(tmp_path, capsys):
    """`nanofm compare translation` with two tiny configs and a 2-second budget each: both runs are trained
    into their folders, and each row of the table holds its own run's figures: its steps, and the BLEU / chrF
    that sacreBLEU gives the hypotheses of its best checkpoint (re-translated here with the same beam)."""
    data = _data(tmp_path)
    configs = {}
    for task, model in TINY_CONFIGS.items():
        configs[task] = tmp_path / f"{task}.yaml"
        configs[task].write_text(f"task: {task}\n{model}\ndata: {{vocab_size: 120, bleu_sentences: 3}}\n"
                                 "train: {batch_size: 10, lr: 5.0e-3, warmup_steps: 2, eval_every: 0, save_every: 0, "
                                 "best_metric: eval/bleu, best_mode: max, log_every: 5}\n")
    out = tmp_path / "compare"
    assert main(["compare", "translation", "--budget", "2s", "--data", str(data), "--out", str(out), "--beam", "2",
                 "--rnn-config", str(configs["translate-rnn"]), "--transformer-config", str(configs["translate-transformer"]),
                 "--no-progress"]) == 0
    report = (out / "table.md").read_text()
    assert report in capsys.readouterr().out
    header, *rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| ")]
    header = [h.strip("| ") for h in header]
    rows = {r[0].strip("| "): dict(zip(header, (c.strip("| ") for c in r))) for r in rows}
    assert set(rows) == {"RNN: GRU + additive attention", "Transformer"}
    test_pairs = [line.split("\t") for line in (data / "test.tsv").read_text().splitlines()]
    for name, task, label in (("RNN: GRU + additive attention", "translate-rnn", "RNN"), ("Transformer", "translate-transformer", "Transformer")):
        run, row = out / task, rows[name]
        steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
        assert row["steps"] == str(steps[-1]) and steps[-1] > 5, row  # a budget run: its own step count
        hyps = Translator.load(run, "best").translate([src for src, _ in test_pairs], beam=2)
        expected = score(hyps, [ref for _, ref in test_pairs])
        assert row["test BLEU"] == f"{expected['bleu']:.2f}" and row["test chrF"] == f"{expected['chrf']:.2f}", (row, hyps)
        shown = re.findall(rf"\*\*{label}:\*\* (.*?)(?:  )?$", report, re.M)
        assert shown == hyps  # the examples are this run's translations, in test order


def test_test_subset_spreads_over_the_short_pairs(tmp_path):
    """subset(n, max_tokens) takes n pairs spread over those with at most max_tokens tokens a side, in order;
    decoding stops at 1.5x + 10 tokens; bleu_sentences=0 evaluates the loss only. Catches: the first n pairs
    taken (one stretch of the split), the length filter applied to one side only, the untrained model's
    decoding running to the model's maximum length, a BLEU metric that decodes when it was turned off."""
    from nanofm.tasks import build_task, load_task_config
    from nanofm.families.seq2seq.translation import decode_limit, subset

    config = Path(__file__).resolve().parents[2] / "configs" / "translate-transformer-es-en.yaml"
    cfg = load_task_config(config, [f"data.dir={_data(tmp_path)}", "data.vocab_size=120", "data.bleu_sentences=0",
                                    *TINY["translate-transformer"]])
    parts = build_task(cfg)
    test = parts.test_data
    longest = [max(len(s) - 1, len(t)) for s, t in zip(test.src, test.tgt)]
    short = sorted(longest)[len(longest) // 2]
    picked = subset(test, 2, short)
    pool = [i for i, n in enumerate(longest) if n <= short]
    assert picked.pairs == [test.pairs[pool[0]], test.pairs[pool[round(len(pool) / 2)]]]
    assert all(max(len(s) - 1, len(t)) <= short for s, t in zip(picked.src, picked.tgt))
    assert subset(test, None) is test and len(subset(test, 10**6, short)) == len(pool)
    assert decode_limit(20) == 40
    assert parts.compute_metrics is None


def test_load_and_predict_translate_as_translate_does(trained, capsys, tmp_path):
    import nanofm

    lines = ["Guarde el documento.", "", "El gato duerme."]
    expected = Translator.load(trained).translate(lines, beam=2)
    predictor = nanofm.load(trained, device="cpu")
    assert isinstance(predictor, Translator) and predictor.translate(lines, beam=2) == expected
    assert predictor("El gato duerme.", beam=2) == expected[2]  # one text in, one text out (not its characters)
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    assert main(["predict", str(trained), "--file", str(tmp_path / "in.txt"), "--beam", "2"]) == 0
    assert capsys.readouterr().out.split("\n")[:3] == expected  # one line per input line, the empty one kept


def test_build_leaves_the_config_as_given(tmp_path):
    """build_task resolves what the data says (the vocabulary size, the special ids) into parts.config, the
    config that config.yaml records, and leaves the caller's config alone (it used to be changed in place)."""
    from nanofm.config import to_dict
    from nanofm.tasks import build_task, load_task_config

    config = Path(__file__).resolve().parents[2] / "configs" / "translate-transformer-es-en.yaml"
    cfg = load_task_config(config, [f"data.dir={_data(tmp_path)}", "data.vocab_size=120", *TINY["translate-transformer"]])
    before = to_dict(cfg)
    parts = build_task(cfg)
    assert to_dict(cfg) == before
    assert parts.config.model.vocab_size == parts.tokenizer.vocab_size != cfg.model.vocab_size
    assert parts.model.cfg.vocab_size == parts.config.model.vocab_size
