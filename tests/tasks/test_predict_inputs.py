"""What the predicting commands make of awkward input: fill-mask on text longer than the model (said, never
silently truncated, never echoed whole), translate one output line per input line (split on \\n only, the
file's encoding checked), classify a phone photo upright (its EXIF orientation applied)."""

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanofm.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "translation-tiny"
TRANSLATION_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "translate-transformer-es-en.yaml"
MODEL_LEN = 32  # the pretrained fixture's model.max_len (tests/tasks/conftest.py)
SHORT = 80  # the most characters a message may spend on the input text


# ---------------------------------------------------------------- fill-mask


def test_fill_mask_says_which_masks_lie_past_the_model(pretrained, capsys):
    text = " ".join(["[MASK]"] * 200)  # 200 tokens: [CLS] + masks 1-30 + [SEP] fill the model's 32
    assert main(["fill-mask", str(pretrained), text, "-k", "1"]) == 0
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err.splitlines()
    assert [line.split(":")[0] for line in out[1:]] == [f"  [MASK] {i}" for i in range(1, 31)]
    assert len(err) == 1 and "masks 31-200" in err[0] and f"model's {MODEL_LEN} tokens" in err[0]  # was: nothing said
    assert out[0] == text[:60] + "..."  # the header line is an excerpt, not the 1,399 characters


def test_fill_mask_with_every_mask_past_the_model_is_a_short_error(pretrained, capsys):
    text = "El niño come pan. " * 2500 + "La niña [MASK] un libro."  # 10,006 words, the mask last
    assert main(["fill-mask", str(pretrained), text]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and f"past the model's {MODEL_LEN} tokens" in err  # was: no [MASK] in '<45 KB>'
    assert len(err) < 200 + SHORT and len(captured.out) < SHORT


def test_fill_mask_refusals_echo_an_excerpt_only(pretrained, capsys):
    assert main(["fill-mask", str(pretrained), "Sin máscara. " * 1000]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nanofm: error: no [MASK] in 'Sin máscara. ") and err.endswith("...'")
    assert len(err) < SHORT + 40  # was: the 13,000 characters


# ---------------------------------------------------------------- translate


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory) -> Path:
    """A translation run trained for 2 steps: line handling does not need good translations."""
    tmp = tmp_path_factory.mktemp("translate")
    data, run = tmp / "data", tmp / "run"
    data.mkdir()
    for name in ("train.tsv", "valid.tsv", "test.tsv"):
        (data / name).write_text((FIXTURE / name).read_text())
    tiny = ["model.d_model=16", "model.n_heads=2", "model.n_encoder_layers=1", "model.n_decoder_layers=1",
            "model.d_ff=32"]
    args = ["train", str(TRANSLATION_CONFIG), f"data.dir={data}", "data.vocab_size=120", "data.bleu_sentences=1",
            "data.test_beam=1", "train.steps=2", "train.batch_size=4", "train.warmup_steps=1", "train.eval_every=2",
            "train.save_every=2", *tiny, "--out", str(run), "--no-progress"]
    assert main(args) == 0
    return run


# 3 lines, the second empty; form feed, U+2028, \x1c, \x1d, \x85 and a lone \r are not line breaks
LINES = ["Soy\x0cestudiante.\u2028Abra\x1cel menú.", "", "El gato\x1d duerme.\x85 Guarde\r el documento."]


def _translated(out: str) -> list[str]:
    assert out.endswith("\n")
    return out[:-1].split("\n")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_translate_gives_one_line_per_input_line(translation_run, tmp_path, capsys, monkeypatch, newline):
    path = tmp_path / "in.txt"
    path.write_bytes(newline.join(LINES).encode() + newline.encode())  # a trailing newline adds no line
    assert main(["translate", str(translation_run), "--file", str(path), "--beam", "1"]) == 0
    from_file = _translated(capsys.readouterr().out)
    assert len(from_file) == 3 and from_file[0] and from_file[1] == "" and from_file[2]  # was: 9 lines
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes()), encoding="utf-8"))
    assert main(["translate", str(translation_run), "--beam", "1"]) == 0
    assert _translated(capsys.readouterr().out) == from_file  # stdin: the same lines


def test_translate_names_a_file_that_is_not_utf8(translation_run, tmp_path, capsys, monkeypatch):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Soy estudiante.\nEl café está frío.\n".encode("latin-1"))
    assert main(["translate", str(translation_run), "--file", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: not valid UTF-8" in err  # was: 'utf-8' codec can't decode byte 0xe9 in position 22
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes()), encoding="utf-8"))
    assert main(["translate", str(translation_run)]) == 1
    assert "<stdin>:2: not valid UTF-8" in capsys.readouterr().err


# ---------------------------------------------------------------- classify


def test_classify_turns_a_phone_photo_upright(tmp_path, capsys):
    import transformers

    from tests.interop.conftest import jitter

    c = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                               image_size=28, patch_size=7, num_channels=1, id2label={0: "shirt", 1: "shoe", 2: "bag"})
    jitter(transformers.ViTForImageClassification(c), scale=0.5).save_pretrained(tmp_path / "hf")
    run = tmp_path / "run"
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), str(run)]) == 0
    upright = (np.arange(28 * 28).reshape(28, 28) * 7 % 256).astype(np.uint8)  # (28, 28), no symmetry
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to show
    Image.fromarray(upright).save(tmp_path / "upright.png")
    Image.fromarray(np.rot90(upright)).save(tmp_path / "phone.png", exif=exif)  # stored sideways, shown upright
    Image.fromarray(np.rot90(upright)).save(tmp_path / "sideways.png")  # the same pixels, no orientation
    capsys.readouterr()
    scores = {}
    for name in ("upright", "phone", "sideways"):
        assert main(["classify", str(run), str(tmp_path / f"{name}.png"), "-k", "3"]) == 0
        scores[name] = capsys.readouterr().out.partition(": ")[2]
    assert scores["sideways"] != scores["upright"]  # the model does see the orientation
    assert scores["phone"] == scores["upright"]  # was: the phone photo classified sideways
