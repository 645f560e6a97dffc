"""What the CLI says when the user gets something wrong (issue 20): one line naming the key, file or value, exit
status 2 for a config or usage error and 1 for other user errors; anything else is a bug, with its traceback."""

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from nanofm import __version__
from nanofm.cli import main
from nanofm.errors import DataError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# small and short, so that a config the CLI wrongly accepts trains for a moment only
TINY = ["train.steps=2", "train.warmup_steps=1", "train.batch_size=8", "data.train_size=16", "data.eval_size=8",
        "model.d_model=16", "model.n_heads=2", "--no-progress"]


def _error(capsys) -> str:
    """The one line on stderr."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def _usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------- 1. the model's max_len against the data's lengths


@pytest.mark.parametrize("config, overrides, expected", [
    ("copy-tiny.yaml", ["model.max_len=8"], "override 'model.max_len=8': model.max_len=8 is below data.max_len=12 (+ 1"),
    ("translate-transformer-es-en.yaml", ["model.max_len=64", "data.max_tokens=80"],
     "override 'model.max_len=64': model.max_len=64 is below data.max_tokens=80 (+ 1"),
    ("bert-mini-mlm-es.yaml", ["data.max_len=200"], "override 'data.max_len=200': model.max_len=128 is below data.max_len=200:"),
])
def test_max_len_below_the_data_is_refused_before_training(config, overrides, expected, tmp_path, capsys):
    assert main(["train", str(CONFIGS / config), *overrides, "--out", str(tmp_path / "run")]) == 2
    assert _error(capsys).startswith(f"nanofm: error: {expected}")  # was: position 66 exceeds max_len=64, mid-run
    assert not (tmp_path / "run").exists()


def test_max_len_of_a_finetune_config_names_its_file_line(tmp_path, capsys):
    cfg = tmp_path / "ft.yaml"
    cfg.write_text("task: finetune\nmodel:\n  max_len: 64\ndata:\n  max_len: 128\n")
    assert main(["train", str(cfg)]) == 2
    assert _error(capsys).startswith(f"nanofm: error: {cfg}:3: model.max_len=64 is below data.max_len=128:")  # was: cut to 64


# ---------------------------------------------------------------- 2. -k


@pytest.mark.parametrize("command", [["classify", "RUN", "img.png"], ["fill-mask", "RUN", "a [MASK]"]])
@pytest.mark.parametrize("k", ["-1", "0"])
def test_top_k_must_be_positive(command, k, capsys):
    err = _usage_error(capsys, [*command, "-k", k])  # was: a traceback (-1), nothing printed (0)
    assert f"argument -k/--top-k: expected a whole number of at least 1, got '{k}'" in err


@pytest.mark.parametrize("command, flag", [
    (["translate", "RUN", "hola"], "--beam"), (["compare", "translation"], "--beam"),
    (["generate", "RUN", "un vestido"], "-n"), (["generate", "RUN", "un vestido"], "--steps"),
    (["generate", "RUN", "un vestido"], "--prior-steps"), (["benchmark", "t2i", "RUN"], "-n"),
    (["benchmark", "t2i", "RUN"], "--steps"),
])
def test_counts_of_beams_images_and_steps_must_be_positive(command, flag, capsys):
    err = _usage_error(capsys, [*command, flag, "0"])  # was: accepted, then an empty result or a torch error
    assert "expected a whole number of at least 1, got '0'" in err and flag in err


def test_a_cuda_device_that_is_not_there_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert main(["train", str(CONFIGS / "copy-tiny.yaml"), *TINY, "train.device=cuda", "--out", str(tmp_path / "r")]) == 2
    assert _error(capsys) == ("nanofm: error: train.device=cuda: this machine has 0 CUDA device(s) (no CUDA build "
                              "or driver); use train.device=cpu or auto")  # was: torch's traceback from set_device


# ---------------------------------------------------------------- 3, 4. train.* values


@pytest.mark.parametrize("override, expected", [
    ("train.device=cpu:banana", "train.device must be auto, cpu, cuda, cuda:N or mps, got 'cpu:banana'"),  # was: a traceback
    ("train.lr=nan", "train.lr must be a finite number > 0, got nan"),  # was: torch's 'Invalid learning rate: nan'
    ("train.lr=inf", "train.lr must be a finite number > 0, got inf"),
    ("train.lr=-1", "train.lr must be a finite number > 0, got -1.0"),
    ("train.betas=[2,3]", "train.betas must be two numbers in [0, 1), got (2.0, 3.0)"),
    ("train.weight_decay=-0.1", "train.weight_decay must be a finite number >= 0, got -0.1"),
    ("train.eps=0", "train.eps must be a finite number > 0, got 0.0"),
    ("train.grad_clip=-1", "train.grad_clip must be a finite number >= 0 (0: no clipping), got -1.0"),  # was: no clipping
    ("train.budget=30", "train.budget: cannot read duration '30': give it a unit, like 30s or 30m"),  # was: must be str
    ("train.budget='1h30'", "train.budget: cannot read duration '1h30': write it like 90s, 20m or 1h30m"),  # was: 1h 30s
])
def test_train_values_are_checked_and_named(override, expected, tmp_path, capsys):
    assert main(["train", str(CONFIGS / "copy-tiny.yaml"), *TINY, override, "--out", str(tmp_path / "run")]) == 2
    assert _error(capsys) == f"nanofm: error: override {override!r}: {expected}"


def test_a_warmup_longer_than_the_run_is_said(tmp_path, capsys):
    """Was: cut to the run's length silently."""
    assert main(["train", str(CONFIGS / "copy-tiny.yaml"), *TINY, "train.warmup_steps=5", "--out", str(tmp_path / "r")]) == 0
    assert "train.warmup_steps=5 is not shorter than the run's 2 steps: the warm-up is cut to 1 steps" in capsys.readouterr().out


# ---------------------------------------------------------------- 5. the override is blamed, not the file


@pytest.mark.parametrize("override, expected", [
    ("model.n_heads=3", "override 'model.n_heads=3': model.d_model=64 must be divisible by model.n_heads=3"),
    ("model={d_model: abc}", "override 'model={d_model: abc}': 'model.d_model' must be int, got str 'abc'"),
])
def test_a_bad_override_is_blamed_on_the_override(override, expected, capsys):
    assert main(["train", str(CONFIGS / "copy-tiny.yaml"), override]) == 2
    err = _error(capsys)
    assert err == f"nanofm: error: {expected}" and "copy-tiny.yaml" not in err  # was: configs/copy-tiny.yaml:4 / :6


def test_a_bad_value_in_the_file_names_its_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: copy\ntrain:\n  steps: 100\n  lr: -1\n")
    assert main(["train", str(cfg)]) == 2
    assert _error(capsys) == f"nanofm: error: {cfg}:4: train.lr must be a finite number > 0, got -1.0"


# ---------------------------------------------------------------- 6. duplicate keys


@pytest.mark.parametrize("text, line, key, first", [
    ("task: copy\ntrain:\n  lr: 1.0e-3\n  steps: 2\n  lr: 1.0e-2\n", 5, "lr", 3),
    ("task: copy\nmodel:\n  d_model: 16\ntask: copy\n", 4, "task", 1),
    ("task: copy\nmodel:\n  vocab: {a: 1, a: 2}\n", 3, "a", 3),
])
def test_duplicate_yaml_keys_are_refused(text, line, key, first, tmp_path, capsys):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(text)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), *TINY]) == 2
    assert _error(capsys) == f"nanofm: error: {cfg}:{line}: duplicate key {key!r} (first at line {first})"  # was: the last won


# ---------------------------------------------------------------- 7. the user's text files: UTF-8 or a clear error


def test_latin1_train_tsv_names_file_line_and_byte(tmp_path, capsys):
    for split in ("valid", "test"):
        (tmp_path / f"{split}.tsv").write_text("hola\thello\n")
    (tmp_path / "train.tsv").write_bytes("hola\thello\ncafé\tcoffee\n".encode("latin-1"))
    assert main(["train", str(CONFIGS / "translate-rnn-es-en.yaml"), f"data.dir={tmp_path}", "--out", str(tmp_path / "run")]) == 1
    assert _error(capsys) == (f"nanofm: error: {tmp_path / 'train.tsv'}:2: not valid UTF-8 (byte 0xe9 at offset 14); "
                              "save the file as UTF-8")  # was: invalid continuation byte at byte 3 (of the line)


def test_latin1_corpus_input_names_file_line_and_byte(tmp_path, capsys):
    (tmp_path / "mis.txt").write_bytes("Línea uno.\nAñadir dos.\n".encode("latin-1"))
    args = ["data", "prepare", "corpus", "--sources", "none", "--input", str(tmp_path / "mis.txt"), "--out", str(tmp_path / "o")]
    assert main(args) == 1
    assert _error(capsys) == (f"nanofm: error: {tmp_path / 'mis.txt'}:1: not valid UTF-8 (byte 0xed at offset 1); "
                              "save the file as UTF-8")


def test_latin1_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes("task: copy\n# café\n".encode("latin-1"))
    assert main(["train", str(cfg)]) == 2  # was: a UnicodeDecodeError (or a mis-read file, by the locale's encoding)
    assert _error(capsys) == f"nanofm: error: {cfg}:2: not valid UTF-8 (byte 0xe9 at offset 16); save the file as UTF-8"


# ---------------------------------------------------------------- 9. the CLI's own arguments


def test_presets_of_an_unknown_family(capsys):
    assert main(["presets", "--family", "foo"]) == 2
    err = _error(capsys)  # was: max() arg is an empty sequence
    assert err.startswith("nanofm: error: unknown family 'foo'; families: ") and "encoder-decoder" in err


@pytest.mark.parametrize("command", [["train", "c.yaml"], ["demo"], ["compare", "translation"],
                                     ["benchmark", "vision"], ["benchmark", "beto", "RUN"]])
def test_a_budget_needs_a_unit(command, capsys):
    err = _usage_error(capsys, [*command, "--budget", "30"])  # was: the override 'train.budget=30' nobody wrote
    assert "argument --budget: cannot read duration '30': give it a unit, like 30s or 30m" in err
    assert "train.budget" not in err


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"nanofm {__version__}\n"  # was: required: COMMAND


def test_train_without_a_config_asks_for_the_config(capsys):
    err = _usage_error(capsys, ["train"])
    assert err.rstrip().endswith("error: the following arguments are required: config")  # was: config, KEY=VALUE
    assert "[KEY=VALUE ...]" in err  # the usage line still shows the overrides


def test_help_mentions_nanofm_debug(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "NANOFM_DEBUG=1" in out and "--version" in out


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "nanofm.cli", "presets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written, like `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == ""  # was: [Errno 32] Broken pipe, status 1


# ---------------------------------------------------------------- 10. user errors in one line, bugs with a traceback


@pytest.mark.parametrize("error", [KeyError("x"), ValueError("x"), OSError(errno.EIO, "x"), AttributeError("x")])
def test_an_unexpected_error_is_reported_as_a_bug(error, monkeypatch, capsys):
    def broken(family=None):
        raise error

    monkeypatch.setattr("nanofm.families.presets", broken)
    assert main(["presets"]) == 1
    err = capsys.readouterr().err  # was: "nanofm: error: x", the bug hidden as a user error
    assert "Traceback (most recent call last)" in err and f"{type(error).__name__}" in err
    assert err.strip().splitlines()[-1] == f"nanofm: this is a bug; please report it with the traceback above (nanofm {__version__})"


@pytest.mark.parametrize("error, status", [
    (DataError("data/x.tsv:3: empty field"), 1),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "data/x"), 1),
    (PermissionError(errno.EACCES, "Permission denied", "runs/x"), 1),
    (OSError(errno.ENOSPC, "No space left on device", "runs/x"), 1),
])
def test_user_errors_stay_one_line(error, status, monkeypatch, capsys):
    def refuse(family=None):
        raise error

    monkeypatch.setattr("nanofm.families.presets", refuse)
    assert main(["presets"]) == status
    assert _error(capsys) == f"nanofm: error: {error}"
    monkeypatch.setenv("NANOFM_DEBUG", "1")
    with pytest.raises(type(error)):
        main(["presets"])
