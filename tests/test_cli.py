import json
import subprocess
import sys

from nanofm import __version__
from nanofm.cli import main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "nanofm.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("version", "presets", "config", "train", "evaluate", "info", "predict"):
        assert command in out.stdout


def test_version(capsys):
    assert main(["version"]) == 0
    assert f"nanofm {__version__}" in capsys.readouterr().out


def test_presets_and_config(capsys):
    assert main(["presets"]) == 0
    assert "transformer-tiny" in capsys.readouterr().out
    assert main(["config", "transformer-tiny", "d_model=32"]) == 0
    assert "d_model: 32" in capsys.readouterr().out


def test_train_info_evaluate(capsys, tmp_path):
    cfg = tmp_path / "copy.yaml"
    cfg.write_text("task: copy\ntrain:\n  steps: 6\n  batch_size: 8\n  eval_every: 3\n  warmup_steps: 2\n"
                   "data:\n  eval_size: 4\n  train_size: 64\nmodel:\n  d_model: 32\n")
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "data.max_len=6", "--no-progress"]) == 0  # overrides anywhere
    out = capsys.readouterr().out
    assert "6 steps, batch 8" in out and "held-out accuracy on 4 sequences" in out and "done: 6 steps" in out
    assert (run / "loss_curve.png").stat().st_size > 0 and (run / "checkpoints" / "step-000006").is_dir()
    card = (run / "README.md").read_text()  # the model card: what it is, its metrics, its config
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval/loss" in line][-1]
    assert card.startswith("# run\n") and "task `copy`" in card and f"(step 6, held-out split): loss {last['eval/loss']:.4f}" in card
    assert card.split("```yaml\n")[1].split("```")[0] == (run / "config.yaml").read_text()
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "step-000006  step 6/6" in out and "latest" in out and "last eval: step 6" in out
    assert main(["evaluate", str(run), "--checkpoint", "latest"]) == 0
    assert "eval/token_accuracy" in capsys.readouterr().out
    assert main(["predict", str(run), "a b c"]) == 2  # a copy run is not for users: said, naming the run
    assert f"{run}: a 'copy' run has no predictor" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nowhere"), "x"]) == 2
    assert "nowhere: not a run folder (no config.yaml)" in capsys.readouterr().err
    # the same folder again without --resume is refused, not overwritten
    assert main(["train", str(cfg), "--out", str(run), "--no-progress"]) == 1
    assert "already holds checkpoints: resume with --resume auto" in capsys.readouterr().err
    # resuming a finished run: nothing left to train, the final checkpoint is kept
    assert main(["train", str(cfg), "--out", str(run), "--no-progress", "--resume", "auto", "data.max_len=6"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert (run / "checkpoints" / "step-000006").is_dir()


def test_unknown_option_is_refused(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["train", "x.yaml", "--budgte", "5m"])
    assert "unrecognized arguments: --budgte" in capsys.readouterr().err


def test_bad_config_is_a_clear_error(capsys, tmp_path):
    cfg = tmp_path / "copy.yaml"
    cfg.write_text("task: copy\ntrain:\n  steps: 5\nmodel:\n  heads: 4\n")
    assert main(["train", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:5" in err and "unknown key 'model.heads'" in err
    cfg.write_text("task: copy\n")
    assert main(["train", str(cfg), "train.steps=five"]) == 2
    assert "'train.steps' must be int" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot read config" in capsys.readouterr().err
    (tmp_path / "other.yaml").write_text("task: poetry\n")
    assert main(["train", str(tmp_path / "other.yaml")]) == 2
    assert ("'task' must be one of ['clip', 'copy', 'diffusion-decoder', 'diffusion-prior', 'finetune', 'image-classify', "
            "'mae', 'mlm', 'scene-verifier', 'translate-rnn'") in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
