"""The vision tasks end to end through the CLI, on a tiny learnable image set: ViT training and `classify`,
MAE pretraining with its reconstructions, fine-tuning from it, the linear probe, and the vision table."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from nanofm.cli import main
from nanofm.engine.checkpoint import pick_checkpoint, read_state_dict
from tests.vision.fakes import write_idx

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.d_ff=64", "model.patch_size=7"]
MAE_TINY = [*TINY, "mae.decoder_dim=32", "mae.decoder_layers=1", "mae.decoder_heads=2", "mae.decoder_d_ff=64"]
RUN = ["data.augment.flip=false", "train.batch_size=16", "train.warmup_steps=5", "train.log_every=5", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _patterns(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose class (0..3) is the quadrant that is bright, plus noise."""
    labels = np.arange(n) % 4
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, k = divmod(int(c), 2)
        images[i, 14 * r : 14 * r + 14, 14 * k : 14 * k + 14] += 180
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    src = tmp / "src"
    src.mkdir()
    for prefix, n in (("train", 240), ("t10k", 40)):
        images, labels = _patterns(n, rng)
        write_idx(src / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(src / f"{prefix}-labels-idx1-ubyte.gz", labels)
    out = tmp / "prepared"
    assert main(["data", "prepare", "fashion-mnist", "--source", str(src), "--out", str(out), "--val-size", "40"]) == 0
    return out


def _is_png(path) -> bool:
    with Image.open(path) as im:
        im.verify()
        return im.format == "PNG"


def test_vit_trains_classifies_and_draws(data, tmp_path, capsys):
    run = tmp_path / "vit"
    args = ["train", "configs/vit-fmnist.yaml", f"data.dir={data}", *TINY, "train.steps=80", "train.lr=3e-3",
            "train.eval_every=40", "train.save_every=40", *RUN, "--out", str(run)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "image classification (prepared, 10 classes, 28x28x1): 200 train, 40 val, 40 test" in out
    acc = float(out.split("test accuracy ")[1].split()[0])
    assert acc >= 0.9, out  # four bright quadrants: learnable in 80 steps
    for name in ("confusion_matrix.png", "attention_rollout.png", "loss_curve.png"):
        assert _is_png(run / name)
    cfg = (run / "config.yaml").read_text()
    assert "classes:" in cfg and "mean:" in cfg  # what `classify` needs travels with the run

    image = tmp_path / "quadrant.png"
    pixels = np.zeros((56, 56), np.uint8)
    pixels[28:, 28:] = 255  # bottom right: class 3, at twice the size (classify resizes)
    Image.fromarray(pixels).convert("RGB").save(image)  # RGB: classify converts to the model's one channel
    assert main(["classify", str(run), str(image), "-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: Dress ") and line.count(",") == 1  # class 3 of Fashion-MNIST is "Dress"
    assert main(["predict", str(run), str(image), "-k", "2"]) == 0
    assert capsys.readouterr().out.strip() == line  # the one command for every run says the same

    import nanofm
    from nanofm.families.vit.task import ImageClassifier

    clf = nanofm.load(run, device="cpu")
    assert isinstance(clf, ImageClassifier)
    by_path = clf(image, k=2)
    assert clf(Image.open(image), k=2) == by_path  # a Pillow image: converted as the file is
    assert clf(np.asarray(Image.open(image)), k=2) == by_path  # an RGB array (H, W, 3) uint8
    batch = clf([image, pixels.astype(np.float32) / 255], k=2)  # a float array in [0, 1], grey
    # batched with another image: the same classes, probabilities equal up to float rounding (batch-size kernels)
    assert [c for c, _ in batch[0]] == [c for c, _ in by_path] and batch[1][0][0] == "Dress"
    assert all(abs(p - q) < 1e-6 for (_, p), (_, q) in zip(batch[0], by_path))


def test_mae_pretrain_finetune_and_linear_probe(data, tmp_path, capsys):
    mae = tmp_path / "mae"
    args = ["pretrain", "configs/mae-vit-fmnist.yaml", f"data.dir={data}", *MAE_TINY, "train.steps=40",
            "train.lr=3e-3", "train.eval_every=20", "train.save_every=20", *RUN, "--out", str(mae)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "masked-autoencoder pretraining" in out and "held-out reconstruction loss" in out
    assert _is_png(mae / "reconstructions.png")
    losses = [r["loss"] for r in map(json.loads, (mae / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < losses[0]
    encoder = {k.removeprefix("encoder."): v for k, v in
               read_state_dict(pick_checkpoint(mae, "latest") / "model.safetensors").items() if k.startswith("encoder.")}

    tuned = tmp_path / "tuned"
    assert main(["finetune", str(mae), "--task", str(data), "train.steps=20", "train.eval_every=20",
                 "train.save_every=20", *RUN, "--out", str(tuned)]) == 0
    out = capsys.readouterr().out
    assert "full training from MAE encoder" in out and "test accuracy" in out

    probe = tmp_path / "probe"
    assert main(["finetune", str(mae), "--task", str(data), "--linear-probe", "train.steps=20",
                 "train.eval_every=20", "train.save_every=20", *RUN, "--out", str(probe)]) == 0
    assert "linear probe (frozen encoder)" in capsys.readouterr().out
    after = read_state_dict(pick_checkpoint(probe, "latest") / "model.safetensors")
    assert all(torch.equal(after[k], v) for k, v in encoder.items())  # the encoder stayed frozen
    assert {k for k in after if k not in encoder} == {"head.weight", "head.bias"}

    assert main(["finetune", str(mae), "--task", str(data), "--linear-probe", "--from-scratch"]) == 2
    assert "cannot start from scratch" in capsys.readouterr().err


def _hand_accuracy(run, labels) -> float:
    """A run's test accuracy by hand: its best checkpoint's arg-max class of each test image, against the
    labels written into the IDX fixture."""
    from nanofm.tasks import build_task, load_task_config
    from nanofm.engine import load_model_weights

    parts = build_task(load_task_config(run / "config.yaml"))
    load_model_weights(parts.model, pick_checkpoint(run, "best") / "model.safetensors")
    test = parts.test_data
    batch = parts.collate([{**test[i], "augment": False} for i in range(len(test))])
    with torch.no_grad():
        preds = parts.model.eval()(batch["images"]).logits.argmax(-1)
    return sum(int(p) == int(y) for p, y in zip(preds, labels)) / len(labels)


def test_vision_benchmark_table(data, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["benchmark", "vision", "--budget", "6s", "--probe-budget", "2s", "--out", str(out), f"data.dir={data}",
            *TINY, "data.augment.flip=false", "train.batch_size=16", "train.warmup_steps=2", "train.eval_every=0", "train.save_every=0"]
    assert main(args) == 0
    table = (out / "table.md").read_text()
    result = json.loads((out / "table.json").read_text())
    assert result["pretrain_budget"] == "3s" and result["finetune_budget"] == "3s"
    labels = [i % 4 for i in range(40)]  # the test split: t10k of the fixture, labels i % 4
    for column, run in (("scratch", "scratch"), ("mae_finetune", "mae-finetune"), ("linear_probe", "mae-linear-probe")):
        r = result[column]
        # the accuracy of the run's best checkpoint on the test images, and training images/s = steps x batch / s
        assert r["test_accuracy"] == pytest.approx(_hand_accuracy(out / run, labels)), column
        assert r["images_per_s"] == pytest.approx(r["steps"] * 16 / r["seconds"], rel=1e-6), column
    s, f, p = (100 * result[c]["test_accuracy"] for c in ("scratch", "mae_finetune", "linear_probe"))
    assert f"| {s:.2f} | {f:.2f} | {p:.2f} |" in table
    assert f"MAE + fine-tune minus from scratch: {f - s:+.2f} points." in table
    assert "| from scratch (test acc.) | MAE + fine-tune (test acc.) |" in table
    assert table in capsys.readouterr().out


def test_vision_table_from_known_runs(data, tmp_path, monkeypatch):
    """benchmark_vision with the training stubbed by known results: the budget split, which run fills which
    column (fine-tuning from the MAE run, on the scratch recipe; the probe on its own budget), the gain."""
    from nanofm.config import to_yaml
    from nanofm.experiments import vision as bv

    known = {"scratch": 0.8125, "mae-finetune": 0.875, "mae-linear-probe": 0.5}
    runs = {}

    def train_run(cfg, out, progress=False, subset=None, only_subset=False):
        runs[out.name] = cfg
        if cfg.task == "mae":
            out.mkdir(parents=True)
            (out / "config.yaml").write_text(to_yaml(cfg))  # what the fine-tuning reads
            return {"steps": 30, "images_per_s": 300.0, "seconds": 1.6}
        return {"steps": 20, "images_per_s": 100.0 + len(runs), "seconds": 3.2, "test_accuracy": known[out.name]}

    monkeypatch.setattr(bv, "train_run", train_run)
    result = bv.benchmark_vision("configs/vit-fmnist.yaml", "configs/mae-vit-fmnist.yaml", "10m", tmp_path / "b",
                                 pretrain_share=0.3, probe_budget="2m", overrides=[f"data.dir={data}", *TINY],
                                 mae_overrides=MAE_TINY[len(TINY):], log=lambda _: None)
    assert [(name, c.train.budget) for name, c in runs.items()] == [
        ("scratch", "10m"), ("mae", "3m"), ("mae-finetune", "7m"), ("mae-linear-probe", "2m")]
    tuned, probe = runs["mae-finetune"], runs["mae-linear-probe"]
    assert tuned.init == probe.init == str(tmp_path / "b" / "mae") and probe.linear_probe and not tuned.linear_probe
    assert tuned.train.lr == runs["scratch"].train.lr and tuned.data.augment == runs["scratch"].data.augment
    assert {c: result[c]["test_accuracy"] for c in ("scratch", "mae_finetune", "linear_probe")} == {
        "scratch": 0.8125, "mae_finetune": 0.875, "linear_probe": 0.5}
    table = (tmp_path / "b" / "table.md").read_text()
    assert "| 81.25 | 87.50 | 50.00 | 101 / 300 / 103 |" in table
    assert "MAE + fine-tune minus from scratch: +6.25 points." in table
    assert json.loads((tmp_path / "b" / "table.json").read_text()) == result



def test_with_a_deadline_both_columns_get_the_same_training_time(data, tmp_path, monkeypatch):
    """Sized from the time left before a deadline, MAE pretraining + fine-tuning get the scratch run's seconds,
    split by pretrain_share. Catches: each run sized from the time left
    after the one before (the scratch run's overrun and overhead then came out of MAE's time: 154 s against 173 s
    in a 30-minute demo), the split inverted."""
    import time
    from nanofm.config import to_yaml
    from nanofm.engine.config import parse_duration
    from nanofm.experiments import vision as bv

    runs = {}

    def train_run(cfg, out, progress=False, subset=None, only_subset=False):
        runs[out.name] = parse_duration(cfg.train.budget)
        if out.name == "scratch":
            time.sleep(1.0)  # an overrun the MAE columns must not pay for
        if cfg.task == "mae":
            out.mkdir(parents=True)
            (out / "config.yaml").write_text(to_yaml(cfg))
            return {"steps": 30, "images_per_s": 300.0, "seconds": 1.6}
        return {"steps": 20, "images_per_s": 100.0, "seconds": 3.2, "test_accuracy": 0.5}

    monkeypatch.setattr(bv, "train_run", train_run)
    bv.benchmark_vision("configs/vit-fmnist.yaml", "configs/mae-vit-fmnist.yaml", "10m", tmp_path / "b",
                        pretrain_share=0.75, overrides=[f"data.dir={data}", *TINY], mae_overrides=MAE_TINY[len(TINY):],
                        log=lambda _: None, deadline=time.time() + 220, probe_weight=0.2)
    assert 90 <= runs["scratch"] <= 100  # (220 s less 4 runs' guessed overhead) * 1 / 2.2
    assert abs(runs["mae"] + runs["mae-finetune"] - runs["scratch"]) <= 1
    assert abs(runs["mae"] - 0.75 * runs["scratch"]) <= 1

def test_vision_label_curve_trains_both_starts_on_the_fine_tunes_budget(data, tmp_path, monkeypatch):
    """The label curve: at each count, MAE + fine-tune (from the table's MAE run) and from scratch, every run on the
    fine-tune's budget and with that count of labels; the table's fine-tune is its point at `labels`. Catches: a
    curve whose scratch runs get the scratch column's long budget (an unfair comparison), a count not applied, or
    the table's fine-tune trained again."""
    from nanofm.config import to_yaml
    from nanofm.experiments import vision as bv

    runs, scored = {}, {}

    def train_run(cfg, out, progress=False, subset=None, only_subset=False):
        runs[str(out.relative_to(tmp_path / "b"))] = cfg
        scored[out.name] = (subset, only_subset)
        if cfg.task == "mae":
            out.mkdir(parents=True)
            (out / "config.yaml").write_text(to_yaml(cfg))
            return {"steps": 30, "images_per_s": 300.0, "seconds": 1.6}
        acc = cfg.data.labels / 100 + (0.1 if cfg.init else 0.0)
        return {"steps": 20, "images_per_s": 100.0, "seconds": 3.2, "test_accuracy": acc, "subset_accuracy": acc}

    monkeypatch.setattr(bv, "train_run", train_run)
    result = bv.benchmark_vision("configs/vit-fmnist.yaml", "configs/mae-vit-fmnist.yaml", "10m", tmp_path / "b",
                                 pretrain_share=0.3, probe_budget="2m", overrides=[f"data.dir={data}", *TINY],
                                 mae_overrides=MAE_TINY[len(TINY):], log=lambda _: None, labels=20, curve=(10, 20))
    batch = runs["scratch"].train.batch_size
    assert batch > 10  # (so that the 10-image points must lower it: a batch larger than the training set is refused)
    curve_runs = {k: (c.train.budget, c.data.labels, bool(c.init), c.train.batch_size) for k, c in runs.items()
                  if k.startswith("curve/")}
    assert curve_runs == {"curve/10-mae": ("7m", 10, True, 10), "curve/10-scratch": ("7m", 10, False, 10),
                          "curve/20-scratch": ("7m", 20, False, min(20, batch))}
    assert [(p["labels"], round(p["pretrained"], 6), round(p["scratch"], 6)) for p in result["curve"]["points"]] == [
        (10, 20.0, 10.0), (20, 30.0, 20.0)]
    assert "| 20 | 30.00 | 20.00 | +10.00 | 7m |" in (tmp_path / "b" / "table.md").read_text()
    # the curve's runs are scored on CURVE_TEST test images only; the table's fine-tune (its point at 20) on both
    assert scored["10-mae"] == scored["20-scratch"] == (bv.CURVE_TEST, True) and scored["mae-finetune"] == (bv.CURVE_TEST, False)
    assert scored["scratch"] == (None, False)
    assert bv.test_subset(list(range(10_000)), 2000) == list(range(0, 10_000, 5))  # every 5th: all classes alike
    from nanofm.families.vit.task import ImageExamples
    from nanofm.vision.io import ImageSet

    images = ImageExamples(ImageSet(torch.arange(40).view(40, 1, 1, 1).to(torch.uint8), torch.arange(40) % 4,
                                    ["a", "b", "c", "d"]), train=False)
    sub = bv.test_subset(images, 10)  # what accuracy() reads: the examples and data.labels
    assert isinstance(sub, ImageExamples) and sub.data.labels.tolist() == [i % 4 for i in range(0, 40, 4)]
    assert [int(sub[i]["images"]) for i in range(len(sub))] == list(range(0, 40, 4))


def test_accuracy_is_the_share_of_right_predictions(data):
    """A stub classifier right on exactly 30 of the 40 test images (wrong on every label-0 one): 0.75."""
    from nanofm.tasks import build_task, load_task_config
    from nanofm.families.vit.task import accuracy

    parts = build_task(load_task_config("configs/vit-fmnist.yaml", [f"data.dir={data}", *TINY]))
    answers = [i % 4 if i % 4 else 1 for i in range(40)]  # the fixture's test labels are i % 4

    class Stub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused, self.seen = torch.nn.Parameter(torch.zeros(1)), 0

        def forward(self, images):
            n, self.seen = images.size(0), self.seen + images.size(0)
            return SimpleNamespace(logits=torch.eye(10)[answers[self.seen - n : self.seen]])

    assert accuracy(Stub(), parts.test_data, parts.collate) == {"accuracy": 0.75}


def test_a_stopped_run_is_never_scored(tmp_path):

    from nanofm.tasks import fit_to_end
    from nanofm.engine import TrainingError

    stopped = SimpleNamespace(fit=lambda: {}, stopped=True, step=7)
    with pytest.raises(TrainingError, match="stopped at step 7; rerun the same command to resume"):
        fit_to_end(stopped, tmp_path)
    finished = SimpleNamespace(fit=lambda: {"eval/loss": 1.0}, stopped=False, step=9, dist=SimpleNamespace(is_main=False))
    assert fit_to_end(finished, tmp_path) == {"eval/loss": 1.0}  # (not the main process: no model card to write)


def test_few_labels_take_the_classes_in_turn(data):
    """data.labels=10 of a 4-class set: 3, 3, 2, 2 images (the classes taking turns), the same images for the
    same seed and others for another; all images when more are asked than there are; MAE refuses the key.
    Catches: the first n images taken (classes in file order), a choice that changes between the scratch and
    the fine-tuning run of one table, an error where 'all of them' is meant, labels silently used by MAE."""
    from nanofm.config import ConfigError
    from nanofm.tasks import build_task, load_task_config

    def chosen(*over):
        parts = build_task(load_task_config(CONFIGS / "vit-fmnist.yaml", [f"data.dir={data}", *over]))
        return [(int(e["targets"]), e["images"].sum().item()) for e in parts.train_data]

    ten = chosen("data.labels=10")
    assert sorted(np.bincount([c for c, _ in ten]).tolist()) == [2, 2, 3, 3]
    assert chosen("data.labels=10") == ten and chosen("data.labels=10", "train.seed=1") != ten
    assert len(chosen("data.labels=100000")) == len(chosen())
    with pytest.raises(ConfigError, match="data.labels"):
        load_task_config(CONFIGS / "mae-vit-fmnist.yaml", [f"data.dir={data}", "data.labels=10"])
