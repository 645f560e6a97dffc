"""The vision table: what masked-autoencoder pretraining buys a ViT at the same total budget.

Three runs of the same ViT on the same data: trained from scratch for the whole budget; MAE-pretrained
for a share of it, then fine-tuned for the rest; and a linear probe of the MAE encoder's frozen features
(its own, stated budget). Test accuracy at each run's best validation checkpoint; images/s of training.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from nanofm.config import apply_overrides, ConfigError, from_dict, to_dict
from nanofm.engine import load_model_weights
from nanofm.engine.checkpoint import pick_checkpoint
from nanofm.engine.config import format_duration, parse_duration
from nanofm.engine.tracking import read_metrics
from nanofm.experiments.label_curve import format_label_curve, label_curve
from nanofm.experiments.timeshare import TimeShare
from nanofm.families.vit.task import accuracy, ImageClassifyTaskConfig, ImageExamples, vision_finetune_config
from nanofm.tasks import build_task, fit_to_end, load_task_config, task_trainer


CURVE_TEST = 2000  # test images that score a label curve's runs (every k-th of the split): its points are many and
# short, and scoring all 10,000 Fashion-MNIST test images took ~9 s a run, more than some runs trained


def test_subset(data: Any, n: int) -> Any:
    """Every k-th example of `data` (image examples, or any sequence), about n of them (all when it has fewer)."""
    step = max(1, len(data) // n)
    if isinstance(data, ImageExamples):
        images = data.data
        return ImageExamples(replace(images, images=images.images[::step][:n], labels=images.labels[::step][:n]), data.train)
    return [data[i] for i in range(0, len(data), step)][:n]


def train_run(cfg: Any, out: Path, progress: bool = False, subset: int | None = None,
              only_subset: bool = False) -> dict[str, float]:
    """Train one task config into `out` (resuming if it was interrupted); test accuracy of the best
    checkpoint (classification) and training images/s. With `subset`, "subset_accuracy" on about that many
    test images too (and, with only_subset, instead of the whole split)."""
    parts = build_task(cfg)
    trainer = task_trainer(parts, cfg, out, progress=progress)
    fit_to_end(trainer, out)
    if parts.pictures is not None:
        parts.pictures(parts.model, out)
    records = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r and "elapsed" in r]
    last = records[-1] if records else {"step": trainer.step, "elapsed": float("nan")}
    result = {"steps": trainer.step, "images_per_s": last["step"] * cfg.train.batch_size / max(last["elapsed"], 1e-9),
              "seconds": last["elapsed"]}
    if cfg.task == "image-classify":
        best = pick_checkpoint(out, "best") if cfg.train.best_metric else pick_checkpoint(out, "latest")
        load_model_weights(parts.model, best / "model.safetensors")
        if subset:
            result["subset_accuracy"] = accuracy(parts.model, test_subset(parts.test_data, subset), parts.collate)["accuracy"]
        if not (subset and only_subset):
            result["test_accuracy"] = accuracy(parts.model, parts.test_data, parts.collate)["accuracy"]
    return result


def benchmark_vision(scratch_config: str, mae_config: str, budget: str, out: str | Path, pretrain_share: float = 0.5,
                     probe_budget: str = "3m", overrides: list[str] = (), log: Callable[[str], None] = print,
                     mae_overrides: list[str] = (), progress: bool = False, labels: int | None = None,
                     deadline: float | None = None, probe_weight: float = 0.35, curve: tuple[int, ...] = ()) -> dict:
    """Run the three columns; write out/table.md and out/table.json; return the results. `overrides` apply to
    every run, `mae_overrides` to the MAE pretraining only (its decoder, its masking). `labels`: the supervised
    runs (scratch, fine-tune, probe) see only that many labelled images; MAE pretrains on all images, unlabelled.
    With a `deadline` (a time.time() value) the budgets come from the time left before it instead: the
    scratch run and MAE + fine-tune get the same share, the probe `probe_weight` of it. `curve`: label counts of a
    label curve, MAE + fine-tune against the ViT from scratch, every run trained for the fine-tune's budget (the
    fine-tune of the table is its point at `labels`)."""
    if not 0.0 < pretrain_share < 1.0:
        raise ConfigError(f"--pretrain-share must be in (0, 1), got {pretrain_share}")
    total = parse_duration(budget)
    out = Path(out)
    pre_budget, ft_budget = format_duration(total * pretrain_share), format_duration(total * (1 - pretrain_share))
    few = [f"data.labels={labels}"] if labels is not None else []
    pairs = len(curve) - (1 if labels in curve else 0)  # points that train both starts (the other is the fine-tune)
    # with a deadline: one share for the two columns (3 runs: scratch, MAE, fine-tune), split so that both get the
    # same training time; then the probe; then each curve point (2 runs as long as the fine-tune, as the table's)
    weights = [2.0, probe_weight, *[2 * (1 - pretrain_share)] * pairs]
    share = TimeShare(deadline, weights, runs=[3, 1, *[2] * pairs]) if deadline is not None else None

    def sized(length: str) -> str:  # the run's budget: as given, or its share of the time left
        return length if share is None else format_duration(share.start())

    def ended() -> None:
        if share is not None:
            share.finish()

    if share is not None:
        column = share.start() / 2  # seconds of each column
        budget, pre_budget, ft_budget = (format_duration(column * f) for f in (1.0, pretrain_share, 1 - pretrain_share))
    log(f"== ViT from scratch, {budget}")
    scratch_cfg = load_task_config(scratch_config, [*overrides, *few, f"train.budget={budget}"])
    scratch = train_run(scratch_cfg, out / "scratch", progress)
    log(f"   test accuracy {scratch['test_accuracy']:.4f}, {scratch['images_per_s']:.0f} images/s")

    mae_cfg = load_task_config(mae_config, [*overrides, *mae_overrides, f"train.budget={pre_budget}"])
    keys = ("d_model", "n_layers", "n_heads", "d_ff", "patch_size", "pool", "pos")
    if any(getattr(mae_cfg.model, k) != getattr(scratch_cfg.model, k) for k in keys):
        raise ConfigError(f"{mae_config} and {scratch_config} must describe the same ViT ({', '.join(keys)})")
    log(f"== MAE pretraining, {pre_budget}")
    mae = train_run(mae_cfg, out / "mae", progress)
    log(f"   {mae['images_per_s']:.0f} images/s")

    def from_mae(linear_probe: bool, length: str, name: str, subset: int | None = None) -> dict[str, float]:
        whole = ["model.patch_dropout=0"] if linear_probe else []  # a probe reads the features of whole images
        cfg = mae_finetune_config(out / "mae", scratch_cfg, linear_probe, [*overrides, *few, *whole, f"train.budget={length}"])
        return train_run(cfg, out / name, progress, subset)

    log(f"== MAE encoder fine-tuned, {ft_budget}")
    finetuned = from_mae(False, ft_budget, "mae-finetune", CURVE_TEST if labels in curve else None)
    ended()
    log(f"   test accuracy {finetuned['test_accuracy']:.4f}")
    probe_budget = sized(probe_budget)
    log(f"== linear probe of the MAE encoder, {probe_budget}")
    probe = from_mae(True, probe_budget, "mae-linear-probe")
    ended()
    log(f"   test accuracy {probe['test_accuracy']:.4f}")

    def point(from_scratch: bool, n: int, length: str | None) -> float:
        log(f"== label curve: {n} labels, {'from scratch' if from_scratch else 'MAE + fine-tune'}, {length}")
        batch = min(n, scratch_cfg.train.batch_size)  # 50 labelled images make one batch of 50, not 128
        few_n = [*overrides, f"data.labels={n}", f"train.budget={length or ft_budget}", f"train.batch_size={batch}"]
        name = f"curve/{n}-{'scratch' if from_scratch else 'mae'}"
        cfg = load_task_config(scratch_config, few_n) if from_scratch else mae_finetune_config(out / "mae", scratch_cfg, False, few_n)
        return 100 * train_run(cfg, out / name, progress, CURVE_TEST, only_subset=True)["subset_accuracy"]

    def pair_budget() -> str:  # each run of a point: half the point's share, or the fine-tune's budget
        return format_duration(share.start() / 2) if share is not None else ft_budget

    known = {(False, labels): (100 * finetuned["subset_accuracy"], ft_budget)} if labels in curve else {}
    result = {
        "model": f"ViT {scratch_cfg.model.d_model} wide, {scratch_cfg.model.n_layers} layers, patch {scratch_cfg.model.patch_size}",
        "data": scratch_cfg.data.dir, "budget": budget, "pretrain_budget": pre_budget, "finetune_budget": ft_budget,
        "probe_budget": probe_budget, "labels": labels, "scratch": scratch, "mae": mae, "mae_finetune": finetuned, "linear_probe": probe,
    }
    if curve:
        result["curve"] = label_curve(curve, point, "accuracy", pair_budget, ended, known)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "table.md").write_text(format_vision_table(result))
    return result


def mae_finetune_config(mae_dir: Path, scratch_cfg: Any, linear_probe: bool, overrides: list[str]) -> Any:
    """The classification config that starts from an MAE run: a fine-tune takes the from-scratch run's recipe
    (training and augmentation), so that only the start differs; a linear probe keeps its own; then `overrides`."""
    data = vision_finetune_config(mae_dir, scratch_cfg.data.dir, False, linear_probe)
    if not linear_probe:
        data["train"] = _as_dict(scratch_cfg.train)
        data["data"]["augment"] = _as_dict(scratch_cfg.data.augment)
    origins = {"": f"fine-tuning of {mae_dir}"}
    apply_overrides(data, overrides, origins)
    return from_dict(ImageClassifyTaskConfig, data, origins)


def _as_dict(obj: Any) -> dict:
    return to_dict(obj)


def format_vision_table(r: dict) -> str:
    s, f, p, m = r["scratch"], r["mae_finetune"], r["linear_probe"], r["mae"]
    lines = [
        "| model | budget | from scratch (test acc.) | MAE + fine-tune (test acc.) | linear probe of MAE (test acc.) "
        "| images/s: scratch / MAE pretrain / fine-tune |",
        "|---|---|---|---|---|---|",
        f"| {r['model']} | {r['budget']} (MAE: {r['pretrain_budget']} + {r['finetune_budget']}; probe {r['probe_budget']}) "
        f"| {100 * s['test_accuracy']:.2f} | {100 * f['test_accuracy']:.2f} | {100 * p['test_accuracy']:.2f} "
        f"| {s['images_per_s']:.0f} / {m['images_per_s']:.0f} / {f['images_per_s']:.0f} |",
        "",
        f"MAE + fine-tune minus from scratch: {100 * (f['test_accuracy'] - s['test_accuracy']):+.2f} points.",
    ]
    if r.get("labels") is not None:
        lines.append(f"The supervised runs saw {r['labels']:,} labelled training images; MAE pretrained on all of "
                     "them, without labels.")
    if r.get("curve"):
        lines += ["", f"Label curve (test accuracy on {CURVE_TEST:,} test images, every k-th of the split; the same MAE "
                      "encoder; both runs of a point train for the same time, the fine-tune's at the table's own count):", "", format_label_curve(r["curve"], "images").rstrip()]
    return "\n".join(lines) + "\n"
