"""Config validation and the readers of the user's text files (issue 20), below the CLI: the shipped configs
load, TrainConfig's checks, where an error is blamed, and one UTF-8 reader (BOM dropped) behind every text file."""

import gzip
import math
from pathlib import Path

import pytest

from nanofm import families as models
from nanofm.config import ConfigError, load_config
from nanofm.data.benchmark_formats import read_conll2002, read_xnli
from nanofm.data.corpus import read_corpus, read_inputs
from nanofm.data.sources import fortunes, manpages
from nanofm.data.spanish_tasks import Example, load_task, read_classification, read_tagged
from nanofm.data.translation import read_tsv
from nanofm.engine import TrainConfig
from nanofm.engine.optim import lr_at
from nanofm.errors import DataError, UserError
from nanofm.tasks import load_task_config
from nanofm.text_files import read_user_text
from tests.test_config import Outer

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_task_config(path)
    assert cfg.train.epochs or cfg.train.budget or cfg.train.warmup_steps <= cfg.train.steps


def test_errors_are_user_errors_and_still_value_errors():
    assert issubclass(ConfigError, UserError) and issubclass(DataError, UserError)
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)  # callers catching ValueError


# ---------------------------------------------------------------- TrainConfig


@pytest.mark.parametrize("kw, message", [
    (dict(lr=math.nan), "lr must be a finite number > 0, got nan"),
    (dict(lr=-1e-3), "lr must be a finite number > 0"),
    (dict(betas=(0.9, 1.0)), "betas must be two numbers in [0, 1)"),
    (dict(weight_decay=math.inf), "weight_decay must be a finite number >= 0"),
    (dict(eps=-1e-8), "eps must be a finite number > 0"),
    (dict(grad_clip=math.nan), "grad_clip must be a finite number >= 0 (0: no clipping)"),
    (dict(min_lr_ratio=2.0), "min_lr_ratio must be in [0, 1]"),
    (dict(max_bad_steps=0), "max_bad_steps must be at least 1"),
    (dict(device="cuda:x"), "device must be auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
    (dict(budget="90"), "budget: cannot read duration '90': give it a unit, like 90s or 90m"),
])
def test_train_config_refuses_by_key(kw, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kw)
    assert message in str(e.value) and set(e.value.keys) & set(kw)  # the keys, for from_dict to blame and prefix


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_devices_accepted(device):
    assert TrainConfig(device=device).device == device


def test_warmup_beyond_the_run_is_cut_to_its_length():
    """A warm-up longer than the run is no error (old runs stay readable): lr_at cuts it to the run's length,
    and the Trainer says so (tests/test_cli_errors.py)."""
    for kw in (dict(steps=10), dict(epochs=1.0), dict(budget="5m")):
        cfg = TrainConfig(warmup_steps=500, **kw)
        assert lr_at(0, 10, cfg) < lr_at(8, 10, cfg) == cfg.lr  # warm-up over the 10 steps the run has
    assert TrainConfig(grad_clip=0.0).grad_clip == 0.0  # 0: no clipping, as documented


def test_override_of_a_section_replaces_its_file_origins(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 3\ninner:\n  width: 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, path, ["inner={width: wide}"])
    assert str(e.value).startswith("override 'inner={width: wide}': 'inner.width' must be int")  # was: c.yaml:3


def test_preset_override_is_blamed_with_dotted_keys():
    with pytest.raises(ConfigError, match=r"^override n_heads=3: d_model=64 must be divisible by n_heads=3$"):
        models.get_config("transformer-tiny", n_heads=3)
    with pytest.raises(ConfigError, match="unknown family 'nope'; families: .*encoder-decoder"):
        models.presets("nope")


def test_duplicate_json_key(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"steps": 3, "steps": 4}')
    with pytest.raises(ConfigError, match=r"c.json: duplicate key 'steps'"):
        load_config(Outer, path)


# ---------------------------------------------------------------- the user's text files


def test_read_user_text_drops_a_bom_and_names_line_and_offset(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(BOM + "uno\ndós\n".encode())
    assert read_user_text(f) == "uno\ndós\n"
    f.write_bytes(BOM + "uno\ndós\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        read_user_text(f)
    assert str(e.value) == f"{f}:2: not valid UTF-8 (byte 0xf3 at offset 8); save the file as UTF-8"


def _man(path: Path) -> str:
    return manpages.read_page(path)


def _fortunes(path: Path):
    return fortunes.read_fortunes(path.parent)


@pytest.mark.parametrize("reader", [read_tsv, read_classification, read_tagged, read_conll2002, read_corpus,
                                    lambda p: read_inputs([p]), _fortunes, _man],
                         ids=["tsv", "classification", "tagged", "conll2002", "corpus", "inputs", "fortunes", "manpage"])
def test_every_reader_of_user_text_names_file_line_and_byte(reader, tmp_path):
    f = tmp_path / "es"
    f.write_bytes("uno\tA\n\ncafé\tB\n".encode("latin-1"))
    with pytest.raises(DataError) as e:  # was: 'invalid UTF-8 (invalid continuation byte at byte 3)', no line / no file
        reader(f)
    assert str(e.value) == f"{f}:3: not valid UTF-8 (byte 0xe9 at offset 10); save the file as UTF-8"


def test_a_bom_stays_out_of_the_first_field(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_bytes(BOM + "hola\thello\n".encode())
    assert read_tsv(tsv) == [("hola", "hello")]  # was: ('\ufeffhola', 'hello')
    task = tmp_path / "task"
    task.mkdir()
    (task / "task.json").write_bytes(BOM + b'{"kind": "classification"}')
    for split in ("train", "dev", "test"):
        (task / f"{split}.tsv").write_bytes(BOM + "Calc\tSume la columna.\n".encode())
    assert load_task(task).splits["train"] == [Example("Sume la columna.", "Calc")]  # was: label '\ufeffCalc'
    xnli = tmp_path / "multinli.train.es.tsv"
    xnli.write_bytes(BOM + "premise\thypo\tlabel\nA.\tB.\tneutral\n".encode())
    assert read_xnli(xnli) == [Example("A.", "neutral", "B.")]  # was: no 'premise' column found
    corpus = tmp_path / "train.txt"
    corpus.write_bytes(BOM + "Primer documento.\n\nSegundo.\n".encode())
    assert read_corpus(corpus) == ["Primer documento.", "Segundo."]


def test_a_gzipped_man_page_is_checked_after_unzipping(tmp_path):
    f = tmp_path / "ls.1.gz"
    f.write_bytes(gzip.compress("línea\n".encode("latin-1")))
    with pytest.raises(DataError, match=r"ls.1.gz:1: not valid UTF-8 \(byte 0xed at offset 1\)"):
        manpages.read_page(f)
