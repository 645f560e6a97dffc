import subprocess
import sys

from nanofm import __version__
from nanofm.cli import main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "nanofm.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("version", "presets", "config", "copy"):
        assert command in out.stdout


def test_version(capsys):
    assert main(["version"]) == 0
    assert f"nanofm {__version__}" in capsys.readouterr().out


def test_presets_and_config(capsys):
    assert main(["presets"]) == 0
    assert "transformer-tiny" in capsys.readouterr().out
    assert main(["config", "transformer-tiny", "d_model=32"]) == 0
    assert "d_model: 32" in capsys.readouterr().out


def test_copy_runs_a_config_with_overrides(capsys, tmp_path):
    cfg = tmp_path / "copy.yaml"
    cfg.write_text("steps: 5\nbatch_size: 8\neval_size: 4\nmodel:\n  d_model: 32\n")
    assert main(["copy", str(cfg), "max_len=6", "--no-progress", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "max_len: 6" in out and "5 steps of 8" in out and "held-out accuracy on 4 sequences" in out


def test_bad_config_is_a_clear_error(capsys, tmp_path):
    cfg = tmp_path / "copy.yaml"
    cfg.write_text("steps: 5\nmodel:\n  heads: 4\n")
    assert main(["copy", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:3" in err and "unknown key 'model.heads'" in err
    assert main(["copy", "steps=five"]) == 2
    assert "'steps' must be int" in capsys.readouterr().err
