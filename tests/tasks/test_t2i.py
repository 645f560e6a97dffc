"""Text to image end to end with tiny models: prepare scenes from a slice of Fashion-MNIST, train CLIP, the
prior, the decoder and the verifier a few steps each through the CLI, tie them, generate, benchmark."""

import json
from pathlib import Path

import pytest

from nanofm.cli import main
from nanofm.data.fashion_mnist import DEBIAN_SOURCE

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = pytest.mark.skipif(not Path(DEBIAN_SOURCE).is_dir(), reason="needs dataset-fashion-mnist")
RUN = ["train.batch_size=16", "train.warmup_steps=2", "train.eval_every=0", "train.save_every=0", "data.eval_size=100",
       "--no-progress"]
TINY_CLIP = ["model.text.d_model=32", "model.text.n_layers=1", "model.text.n_heads=2", "model.text.d_ff=64",
             "model.image.d_model=32", "model.image.n_layers=1", "model.image.n_heads=2", "model.image.d_ff=64",
             "model.embed_dim=16"]
TINY_DIFF = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "model.diffusion.timesteps=50"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("t2i")
    data = tmp / "scenes"
    assert main(["data", "prepare", "fashion-scenes", "--out", str(data), "--limit", "600", "--pairs", "2000"]) == 0
    d = [f"data.dir={data}"]
    assert main(["pretrain", str(CONFIGS / "clip-scenes.yaml"), "train.steps=4", *d, *TINY_CLIP, *RUN,
                 "--out", str(tmp / "clip")]) == 0
    clip = [f"clip={tmp / 'clip'}"]
    assert main(["train", str(CONFIGS / "prior-scenes.yaml"), "train.steps=3", "sample_steps=3", *clip, *d, *TINY_DIFF,
                 *RUN, "--out", str(tmp / "prior")]) == 0
    assert main(["train", str(CONFIGS / "decoder-scenes.yaml"), "train.steps=3", *clip, *d, *TINY_DIFF, *RUN,
                 "--out", str(tmp / "decoder")]) == 0
    assert main(["train", str(CONFIGS / "verifier-scenes.yaml"), "train.steps=3", "model.width=8", "model.hidden=16",
                 *d, *RUN, "--out", str(tmp / "verifier")]) == 0
    assert main(["unclip", str(tmp / "unclip"), "--prior", str(tmp / "prior"), "--decoder", str(tmp / "decoder")]) == 0
    return tmp


def test_prepare_reports_sizes(runs):
    meta = json.loads((runs / "scenes" / "meta.json").read_text())
    assert set(meta["sizes"]) == {"train", "val", "test", "heldout"}
    assert meta["sizes"]["test"]["one_item"] == 600 and meta["sizes"]["train"]["two_items"] > 0
    assert (runs / "scenes" / "tokenizer.json").is_file()


def test_runs_and_unclip_folder(runs):
    for name in ("clip", "prior", "decoder", "verifier"):
        assert (runs / name / "checkpoints").is_dir(), name
    assert (runs / "clip" / "tokenizer.json").is_file()
    assert (runs / "decoder" / "reconstructions.png").is_file()
    text = (runs / "unclip" / "unclip.yaml").read_text()
    assert "clip: ../clip" in text and "prior: ../prior" in text


def test_generate_writes_a_repeatable_grid(runs, tmp_path):
    from PIL import Image

    outs = []
    for i in range(2):
        out = tmp_path / f"grid{i}.png"
        assert main(["generate", str(runs / "unclip"), "un vestido rojo", "-n", "4", "-o", str(out), "--steps", "5",
                     "--guidance", "3", "--prior-steps", "3", "--seed", "0", "--no-progress"]) == 0
        outs.append(out.read_bytes())
    assert Image.open(tmp_path / "grid0.png").size[0] > 100
    assert outs[0] == outs[1]  # --seed makes it repeatable
    assert main(["generate", str(runs / "unclip"), "a blue bag", "-n", "2", "-o", str(tmp_path / "np.png"),
                 "--steps", "3", "--no-prior", "--no-progress"]) == 0


def test_benchmark_t2i_prints_the_table(runs, tmp_path, capsys):
    assert main(["benchmark", "t2i", str(runs / "unclip"), "--verifier", str(runs / "verifier"), "-n", "4", "--steps", "2",
                 "--out", str(tmp_path / "bench"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for what in ("caption fidelity, one item, seen combinations", "held-out combinations", "random baseline",
                 "CLIP top-1 caption retrieval among 100", "zero-shot", "no prior"):
        assert what in out, what
    rows = json.loads((tmp_path / "bench" / "table.json").read_text())["rows"]
    assert all(0.0 <= r["value"] <= 1.0 for r in rows)


def test_unclip_refuses_runs_of_other_tasks(runs):
    assert main(["unclip", str(runs / "x"), "--prior", str(runs / "decoder"), "--decoder", str(runs / "decoder")]) != 0
