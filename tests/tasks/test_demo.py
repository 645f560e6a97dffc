"""`nanofm demo` with tiny presets on tiny data: every part runs through the CLI, the report has every
section and valid pictures, the HTML renders in headless Chromium, and an interrupted demo resumes
without redoing finished parts."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanofm.cli import main
from nanofm.experiments import demo_parts
from nanofm.experiments.demo_plan import PARTS, TITLES

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(demo_data):
    return demo_data


def _demo(data: Path, out: Path, *extra: str) -> int:
    return main(["demo", "--preset", "tiny", "--budget", "1m", "--data", str(data), "--configs", str(CONFIGS),
                 "--out", str(out), "--no-progress", *extra])


def _checkpoint_times(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("model.safetensors")}


@pytest.fixture(scope="module")
def demo(data, tmp_path_factory):
    """A demo interrupted twice: translation alone first, then a crash in the BERT part, then the rest."""
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--preset", "tiny", "--budget", "15s", "--data", str(data), "--configs", str(CONFIGS),
                 "--out", str(out), "--no-progress", "--only", "translation"]) == 0
    first = _checkpoint_times(out / "translation")
    runner = demo_parts.RUNNERS["bert"]

    def crash(demo, budget):
        runner(demo, budget * 0.5)  # trains, then dies before its section is written
        raise OSError("simulated crash")

    demo_parts.RUNNERS["bert"] = crash
    try:
        assert _demo(data, out) == 1
    finally:
        demo_parts.RUNNERS["bert"] = runner
    crashed = _checkpoint_times(out / "bert")
    assert crashed and not (out / "bert" / "section.md").exists()
    assert _demo(data, out) == 0
    return out, first, crashed


def test_every_section_and_picture(demo):
    out = demo[0]
    md = (out / "report.md").read_text()
    for heading in ["Machine and versions", "Time of each part", *TITLES.values()]:
        assert f"## {heading}" in md, heading
    assert "not run" not in md and "interrupted" not in md
    assert "| Abra el menú [MASK] y elija Guardar. |" in md  # fill-mask
    assert "BETO-cased" in md and "random weights" in md  # our table and the lecture's
    assert "caption fidelity" in md and "CLIP top-1" in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    for name in ["attention-translate-transformer.png", "reconstructions.png", "attention_rollout.png", "grid.png",
                 "loss_curve.png", "bert/label_curve.png", "vision/label_curve.png"]:
        assert any(p.endswith(name) for p in images), name
    assert "| labelled examples (images) | pretrained, then fine-tuned | random weights |" in md  # the label curves
    serve = next(line for line in md.splitlines() if "nanofm serve" in line)  # how to try what it trained
    for run in ("translation/translate-transformer", "bert/pretrain", "vision/mae-finetune", "t2i/unclip"):
        assert str(out / run) in serve, run
    for rel in images:
        with Image.open(out / rel) as im:
            im.verify()
            assert im.format == "PNG"


def test_html_is_self_contained(demo):
    page = (demo[0] / "report.html").read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(sources) >= 8 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<table>" in page and "<style>" in page and "http" not in page.split("</style>")[1].split("<body>")[0]


def test_interrupted_demo_resumed_without_redoing_finished_parts(demo, data, capsys):
    out, first, crashed = demo
    assert _checkpoint_times(out / "translation") == first  # finished before the crash: kept as it was
    after = _checkpoint_times(out / "bert")
    assert all(after[p] == t for p, t in crashed.items())  # the crashed part's finished runs were not redone
    state = json.loads((out / "demo.json").read_text())
    assert all(state["parts"][p]["done"] for p in PARTS)
    before = _checkpoint_times(out)
    capsys.readouterr()
    assert _demo(data, out) == 0  # a finished demo: nothing retrained, the report written again
    assert capsys.readouterr().out.count("finished earlier") == len(PARTS)
    assert _checkpoint_times(out) == before


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (make test installs it)")
def test_report_renders_in_headless_chromium(demo, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",  # no network: nothing to fetch
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,4000", f"--screenshot={shot}",
                    (demo[0] / "report.html").as_uri()], check=True, timeout=120, capture_output=True)
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] >= 1000
    colourful = (pixels.max(2) - pixels.min(2) > 40).mean()  # the viridis heatmaps and tinted scenes: not grey text
    assert colourful > 0.01, f"only {colourful:.4f} of the page is coloured: pictures missing?"


def test_missing_data_is_prepared_as_the_commands_do(tmp_path, monkeypatch):
    """A corpus without its tokenizer counts as missing; it is prepared with the command's vocabulary."""
    import nanofm.data.corpus as corpus
    from nanofm.experiments import demo as demo_module
    from nanofm.experiments.demo import Demo, prepare_data

    calls = {}
    monkeypatch.setattr(demo_module, "prepare_corpus", lambda path, *a, **kw: calls.setdefault("corpus", (path, kw)))
    monkeypatch.setattr(demo_module, "prepare_beto_tasks", lambda path, *a, **kw: calls.setdefault("tasks", path))
    monkeypatch.setattr(demo_module, "unavailable", lambda name: None)  # every Debian package can be had
    monkeypatch.setattr(demo_module, "MODULES", {})  # spaCy is installed by `make demo`, not by `make test`
    (tmp_path / "corpus-es").mkdir()
    (tmp_path / "corpus-es" / "train.txt").write_text("Hola.\n")
    prepare_data(Demo(budget="1m", data=tmp_path, only=("bert",)))
    path, kwargs = calls["corpus"]
    assert path == tmp_path / "corpus-es" and kwargs.get("vocab_size", corpus.DEFAULT_VOCAB_SIZE) == corpus.DEFAULT_VOCAB_SIZE
    assert calls["tasks"] == tmp_path / "beto-tasks"


def test_the_demo_names_everything_missing_before_preparing_anything(tmp_path, monkeypatch):
    """A pip user without spaCy or a Debian package learns all that is missing at once, before minutes of data
    preparation. Catches: a check that stops at the first problem, or runs after some preparation."""
    import importlib.util

    from nanofm.config import ConfigError
    from nanofm.experiments import demo as demo_module
    from nanofm.experiments.demo import Demo, prepare_data

    prepared = []
    for name in ("prepare_translation", "prepare_corpus", "prepare_beto_tasks", "prepare_fashion_mnist", "prepare_scenes"):
        monkeypatch.setattr(demo_module, name, lambda path, *a, **kw: prepared.append(path))
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "spacy" else real_find(name, *a))
    monkeypatch.setattr(demo_module, "unavailable", lambda name: "unknown to apt" if name == "fortunes-es" else None)
    with pytest.raises(ConfigError) as e:
        prepare_data(Demo(budget="1m", data=tmp_path))
    message = str(e.value)
    assert "Python module spacy" in message and "Debian package fortunes-es" in message and "unknown to apt" in message
    assert prepared == []
    (tmp_path / "fashion-mnist").mkdir()
    (tmp_path / "fashion-mnist" / "meta.json").write_text("{}")
    (tmp_path / "fashion-scenes").mkdir()
    (tmp_path / "fashion-scenes" / "meta.json").write_text("{}")
    monkeypatch.setattr(demo_module, "train_verifier", lambda demo, run: prepared.append(run))
    prepare_data(Demo(budget="1m", data=tmp_path, only=("vision",)))  # what vision needs is here: nothing to check
    assert prepared == []
