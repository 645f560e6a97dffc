import json
import math
import sys
import time

import pytest
import torch

from nanofm.core.output import ModelOutput
from nanofm.engine import Trainer, TrainingError
from nanofm.engine import precision as precision_module
from nanofm.engine.optim import lr_at, param_groups
from nanofm.engine.tracking import read_metrics
from nanofm.families.seq2seq.copy import build
from nanofm.tasks import finish_run
from tests.train.common import make_trainer, optimizer_tensors, tiny_config, weights, without_key_bias


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _record_grads(trainer) -> list[dict[str, torch.Tensor]]:
    """Capture the gradient each optimizer step applies (after normalisation and clipping)."""
    seen, step = [], trainer.optimizer.step

    def recording_step(*a, **kw):
        seen.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        return step(*a, **kw)

    trainer.optimizer.step = recording_step
    return seen


def test_accumulation_equals_one_big_batch():
    """4 micro-batches of uneven real-token counts (padding) give the same step as one batch of 16."""
    big = make_trainer(tiny_config(steps=3, batch_size=16))
    small = make_trainer(tiny_config(steps=3, batch_size=16, micro_batch_size=4))
    assert small.sampler.accum == 4 and _max_diff(weights(big), weights(small)) == 0
    counts = [sum(len(small.train_data[i]["targets"]) for i in mb) for mb in small.sampler.micro_batches(0)]
    assert len(set(counts)) > 1  # the micro-batches really hold different numbers of real tokens
    grads_big, grads_small = _record_grads(big), _record_grads(small)
    big.fit(), small.fit()
    for g_big, g_small in zip(grads_big, grads_small, strict=True):
        assert _max_diff(g_big, g_small) <= 1e-6
    assert _max_diff(without_key_bias(weights(big)), without_key_bias(weights(small))) <= 1e-6


def _losses(run_dir) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


@pytest.mark.parametrize(
    "stop_after, expect",
    [(10, "step-000002.micro-2"), (20, "step-000005")],  # inside a window; at a step boundary mid-epoch 2
)
def test_resume_is_bit_identical(tmp_path, stop_after, expect):
    cfg = tiny_config(dropout=0.1, steps=8, batch_size=16, micro_batch_size=4)  # dropout: RNG state matters
    straight = make_trainer(cfg, tmp_path / "a")
    straight.fit()

    first = make_trainer(cfg, tmp_path / "b")
    assert first.sampler.steps_per_epoch == 4
    first.fit(stop_after_micro_batches=stop_after)
    assert first.stopped and (tmp_path / "b/checkpoints" / expect).is_dir()
    assert (tmp_path / "b/checkpoints/latest").read_text().strip() == expect
    resumed = make_trainer(cfg, tmp_path / "b", resume="auto")
    assert resumed.resumed_from.name == expect
    resumed.fit()

    assert resumed.step == straight.step == 8
    for k, v in weights(straight).items():
        assert torch.equal(v, weights(resumed)[k]), k
    for k, v in optimizer_tensors(straight).items():
        assert torch.equal(v, optimizer_tensors(resumed)[k]), k
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")  # every per-step loss, bit for bit
    assert [s for s, _ in _losses(tmp_path / "b")] == list(range(1, 9))


def test_non_finite_loss_skips_the_step():
    class NaNAt(torch.nn.Module):
        def __init__(self, model, bad_calls):
            super().__init__()
            self.model, self.bad_calls, self.calls = model, bad_calls, 0

        def forward(self, **batch):
            out = self.model(**batch)
            self.calls += 1
            if self.calls in self.bad_calls:
                out = ModelOutput(loss=out.loss * float("nan"), logits=out.logits, n_targets=out.n_targets)
            return out

    cfg = tiny_config(steps=4)
    trainer = make_trainer(cfg, model=NaNAt(make_trainer(cfg).model, bad_calls={2}))
    trainer._accumulate((0, 0), sync=True)
    trainer._optimizer_step()
    before_w, before_opt = weights(trainer), optimizer_tensors(trainer)
    trainer._accumulate((1, 0), sync=True)
    loss, norm, _ = trainer._optimizer_step()
    assert loss != loss and trainer.skipped_steps == 1 and trainer.step == 2
    for k, v in before_w.items():
        assert torch.equal(v, weights(trainer)[k]), k
    for k, v in before_opt.items():
        assert torch.equal(v, optimizer_tensors(trainer)[k]), k
    trainer.fit()  # the rest trains normally
    assert trainer.skipped_steps == 1 and trainer.consecutive_bad == 0

    always = make_trainer(tiny_config(steps=10, max_bad_steps=3), model=NaNAt(make_trainer(cfg).model, set(range(100))))
    with pytest.raises(TrainingError, match="step 3: non-finite loss or gradients for 3 consecutive steps"):
        always.fit()


class _Linear(torch.nn.Module):
    """loss = scale * mean over the batch of (x . a + b): its gradient is known in closed form."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale
        self.a = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        self.b = torch.nn.Parameter(torch.tensor([0.5]))

    def forward(self, x):
        return ModelOutput(loss=self.scale * (x @ self.a + self.b).mean())


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_gradient_clipping_scales_the_whole_gradient_to_the_limit(grad_clip):
    """With plain SGD the update is -lr times the gradient the trainer hands the optimizer: after a step
    with a huge gradient it must be the step's mean gradient rescaled to norm grad_clip (one factor for
    all parameters). Catches: no clipping, clipping each parameter on its own, clipping the summed
    gradient before it is divided by the examples, clipping by value; grad_clip=0 leaves it whole."""
    from nanofm.engine import TrainConfig

    xs = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [2.0, 4.0]])
    data = [{"x": x} for x in xs]
    model = _Linear(scale=1000.0)
    cfg = TrainConfig(steps=1, batch_size=4, micro_batch_size=2, lr=0.1, warmup_steps=0, schedule="constant",
                      grad_clip=grad_clip, eval_every=0, best_metric=None, log_every=1)
    trainer = Trainer(model, data, cfg, collate=lambda ex: {"x": torch.stack([e["x"] for e in ex])}, progress=False)
    trainer.optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.fit()
    grad = {"a": 1000.0 * xs.mean(0), "b": torch.tensor([1000.0])}  # d loss / d (a, b), by hand: norm ~ 2.6e3
    norm = math.sqrt(sum(float((g**2).sum()) for g in grad.values()))
    factor = grad_clip / (norm + 1e-6) if grad_clip else 1.0  # torch's clip_grad_norm_ coefficient
    for name, g in grad.items():
        step = (model.get_parameter(name).detach() - before[name]).cpu()
        assert torch.allclose(step, -0.1 * factor * g, rtol=1e-5, atol=0), (name, step)
    if grad_clip:
        total = math.sqrt(sum(float(((model.get_parameter(n).detach() - before[n]) ** 2).sum()) for n in grad))
        assert total == pytest.approx(0.1 * grad_clip, rel=1e-5)  # the update's norm is lr * grad_clip


class _Paced(torch.nn.Module):
    """The copy-task model with an injected step time: `slow_after` seconds after its first call, each
    forward sleeps `slow` seconds more (another process took the cores mid-run). Sleeps dominate the step."""

    def __init__(self, model, base: float, slow: float = 0.0, slow_after: float = 0.0):
        super().__init__()
        self.model, self.base, self.slow, self.slow_after, self.t0 = model, base, slow, slow_after, None

    def forward(self, *args, **kw):
        self.t0 = self.t0 or time.perf_counter()
        busy = time.perf_counter() - self.t0 > self.slow_after
        time.sleep(self.base + (self.slow if busy else 0.0))
        return self.model(*args, **kw)


@pytest.mark.parametrize("slow", [0.0, 0.03], ids=["steady", "busy-mid-run"])
def test_budget_ends_on_time(tmp_path, slow):
    """A 4-second budget run ends within 10% of its budget, also when the steps get 2-3x slower a third
    of the way in. Catches: a length fixed once from the first steps and never corrected (the busy run
    overruns by ~80%; a cold first pace ends a steady run early), evaluation or save time left out."""
    budget = 4.0
    cfg = tiny_config(steps=1, budget=f"{budget:g}s", warmup_steps=5, batch_size=16)
    model = _Paced(build(cfg).model, base=0.02, slow=slow, slow_after=budget / 3)
    trainer = make_trainer(cfg, tmp_path / "run", model=model)
    t = time.perf_counter()
    trainer.fit()
    took = time.perf_counter() - t
    assert abs(took - budget) <= 0.1 * budget, took
    assert trainer.total_steps > 20 and trainer.step == trainer.total_steps
    state = json.loads((tmp_path / "run/checkpoints" / f"step-{trainer.step:06d}/trainer_state.json").read_text())
    assert state["total_steps"] == trainer.step


def test_budget_run_resumed_before_its_length_was_fixed(tmp_path):
    cfg = tiny_config(steps=1, budget="3s", warmup_steps=5)
    first = make_trainer(cfg, tmp_path / "run")
    first.fit(stop_after_micro_batches=2)
    assert first.total_steps is None and first.step == 2
    resumed = make_trainer(cfg, tmp_path / "run", resume="auto")
    t = time.perf_counter()
    resumed.fit()
    assert time.perf_counter() - t < 4.0 and resumed.step == resumed.total_steps > 10


def test_a_finished_run_is_continued_with_more_steps(tmp_path):
    first = make_trainer(tiny_config(steps=4, warmup_steps=1, schedule="linear"), tmp_path / "run")
    first.fit()
    cfg = tiny_config(steps=6, warmup_steps=1, schedule="linear")
    longer = make_trainer(cfg, tmp_path / "run", resume="auto")
    assert (longer.step, longer.total_steps) == (4, 6)
    longer.fit()
    assert longer.step == 6 and [s for s, _ in _losses(tmp_path / "run")] == list(range(1, 7))
    assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(lr_at(5, 6, cfg.train))
    with pytest.raises(TrainingError, match="already at step 6, past this config's 5 steps"):
        make_trainer(tiny_config(steps=5, warmup_steps=1, schedule="linear"), tmp_path / "run", resume="auto")


def test_epochs_set_the_number_of_steps():
    trainer = make_trainer(tiny_config(steps=1, epochs=2.5, batch_size=16))  # 64 examples: 2.5 * 64 / 16 = 10 steps
    trainer.fit()
    assert trainer.total_steps == trainer.step == 10
    with pytest.raises(ValueError, match="cannot be combined with budget"):
        tiny_config(epochs=1, budget="5s")


def test_schedule_and_weight_decay_groups():
    cfg = tiny_config(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1).train
    assert lr_at(0, 100, cfg) == pytest.approx(0.1) and lr_at(9, 100, cfg) == pytest.approx(1.0)
    assert lr_at(10, 100, cfg) == pytest.approx(1.0) and lr_at(100, 100, cfg) == pytest.approx(0.1)
    assert lr_at(4, 100, cfg) == pytest.approx(0.5)  # warm-up: lr * (step + 1) / warmup_steps
    # after warm-up, progress p = (step - 10) / (total - 10); lr = 0.1 + 0.9 * shape(p), the formulas by hand.
    # Half-way both shapes give 0.55, so the quarter and three quarters (steps 30 and 70 of 90) tell them
    # apart: a swapped schedule, a cosine of the wrong period or phase, an ignored min_lr_ratio all fail here.
    cosine = lambda p: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))  # noqa: E731
    linear = lambda p: 0.1 + 0.9 * (1 - p)  # noqa: E731
    assert lr_at(55, 100, cfg) == pytest.approx(0.55)  # cosine half-way
    assert lr_at(30, 90, cfg) == pytest.approx(cosine(0.25)) and cosine(0.25) == pytest.approx(0.868198, abs=1e-6)
    assert lr_at(70, 90, cfg) == pytest.approx(cosine(0.75)) and cosine(0.75) == pytest.approx(0.231802, abs=1e-6)
    cfg.schedule = "linear"
    assert lr_at(55, 100, cfg) == pytest.approx(0.55)
    assert lr_at(30, 90, cfg) == pytest.approx(linear(0.25)) and linear(0.25) == pytest.approx(0.775)
    assert lr_at(70, 90, cfg) == pytest.approx(linear(0.75)) and linear(0.75) == pytest.approx(0.325)
    cfg.schedule = "constant"
    assert lr_at(30, 90, cfg) == lr_at(89, 90, cfg) == 1.0
    model = make_trainer(tiny_config()).model
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    names = {id(p): n for n, p in model.named_parameters()}
    assert any("norm" in names[id(p)] for p in no_decay["params"]) and any(names[id(p)].endswith("bias") for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_run_folder_outputs(tmp_path):
    cfg = tiny_config(steps=6, eval_every=2, save_every=2, keep_last=1, best_metric="eval/loss")
    trainer = make_trainer(cfg, tmp_path / "run", eval_data=make_trainer(cfg).train_data)
    trainer.fit()
    run = tmp_path / "run"
    assert not (run / "loss_curve.png").exists()  # the engine draws nothing: its caller does (finish_run)
    finish_run(trainer, run)
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if "eval/loss" in r] == [2, 4, 6]
    assert all("tokens_per_s" in r for r in records if "loss" in r)
    assert (run / "loss_curve.png").stat().st_size > 1000 and (run / "config.yaml").read_text().startswith("task: copy")
    assert list((run / "tensorboard").glob("events.*"))
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    best = (run / "checkpoints/best").read_text().strip()
    assert "step-000006" in ckpts and best in ckpts and len([c for c in ckpts if c.startswith("step-")]) <= 2
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        make_trainer(cfg, run)


def test_bf16_on_cpu_only_when_measured_faster(monkeypatch, capsys):
    """The measured step times decide (engine/precision.py): bf16 only when its step is faster (a flipped comparison, or a choice
    that ignores the timing, picks the wrong one in one of the two cases), and the choice is what trains."""
    for t16, expect in ((0.5, "bf16"), (2.0, "fp32"), (1.0, "fp32")):  # faster, slower, a tie
        times = {"fp32": 1.0, "bf16": t16}
        monkeypatch.setattr(precision_module, "time_step", lambda model, batch, device, precision, repeats=3: times[precision])
        trainer = make_trainer(tiny_config(precision="bf16", device="cpu"))  # (CUDA takes bf16 untimed)
        assert trainer.precision == expect, times
        out = capsys.readouterr().out
        assert f"precision: bf16 {t16 * 1e3:.1f} ms vs fp32 1000.0 ms per micro-batch on this CPU: using {expect}" in out
        seen = []
        trainer.model.register_forward_pre_hook(lambda m, a: seen.append(torch.is_autocast_enabled("cpu")))
        trainer._accumulate((0, 0), sync=True)
        assert seen == [expect == "bf16"]  # the micro-batch ran under bf16 autocast exactly when bf16 was chosen

    def never(model, batch, device, precision, repeats=3):
        raise AssertionError("fp32 and auto are not timed on the CPU")

    monkeypatch.setattr(precision_module, "time_step", never)
    assert make_trainer(tiny_config(device="cpu")).precision == "fp32"
    assert make_trainer(tiny_config(precision="fp32", device="cpu")).precision == "fp32"


def test_group_by_length_batches_similar_lengths_deterministically():
    from nanofm.engine.sampler import StepSampler

    lengths = [int(x) for x in torch.randint(1, 100, (640,), generator=torch.Generator().manual_seed(0))]
    a = StepSampler(640, 16, 4, lengths=lengths, seed=3)
    b = StepSampler(640, 16, 4, lengths=lengths, seed=3)
    plain = StepSampler(640, 16, 4, seed=3)

    def spread(s):  # mean (max - min) length within a batch
        batches = [sum(s.micro_batches(k), []) for k in range(s.steps_per_epoch)]
        return sum(max(lengths[i] for i in bt) - min(lengths[i] for i in bt) for bt in batches) / len(batches)

    assert [a.micro_batches(k) for k in range(40)] == [b.micro_batches(k) for k in range(40)]
    epoch = sorted(i for k in range(a.steps_per_epoch) for mb in a.micro_batches(k) for i in mb)
    assert epoch == list(range(640))  # every example once per epoch
    assert spread(a) < 0.25 * spread(plain)


# every way a tensor's value reaches Python (on a GPU each one waits for the queued kernels)
READ_BACKS = ("item", "tolist", "cpu", "numpy", "__array__", "__float__", "__int__", "__bool__", "__index__", "__format__")


def _count_read_backs(monkeypatch, trainer) -> int:
    """Conversions to Python made while `trainer` fits, except those made while a micro-batch is collated
    (the sampler's index lists and the data set's own CPU tensors: host data, never on the device)."""
    count = [0]

    def counted(fn):
        def read(self, *a, **kw):
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_name != "_collate_at":
                frame = frame.f_back
            count[0] += frame is None
            return fn(self, *a, **kw)

        return read

    with monkeypatch.context() as m:
        for name in READ_BACKS:
            m.setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name)))
        trainer.fit()
    return count[0]


def test_reads_back_once_per_step_not_per_micro_batch(monkeypatch, one_thread):
    """Losses and token counts are summed on the device and read back once per step (with the gradient
    norm: two conversions a step), however many micro-batches the step has. A read-back per micro-batch
    (an .item(), float(), .tolist() or int() of the loss or of the token count), or a third one per step,
    changes these counts."""
    reads = {}
    for steps in (3, 5):
        for micro in (16, 4):  # 1 and 4 micro-batches a step
            trainer = make_trainer(tiny_config(steps=steps, batch_size=16, micro_batch_size=micro, log_every=100))
            reads[steps, micro] = _count_read_backs(monkeypatch, trainer)
    assert reads[3, 4] == reads[3, 16] and reads[5, 4] == reads[5, 16], reads
    assert reads[5, 16] - reads[3, 16] == 2 * 2, reads  # exactly 2 per step: the step's sums and the gradient norm


def test_layer_decay_gives_each_block_its_rate(tmp_path):
    """Fine-tuning with train.layer_decay=0.5 on a 2-block ViT: AdamW's first step moves each weight by its
    group's rate (|m/sqrt(v)| = 1 at step 1, no weight decay), so the largest change of each parameter is
    the rate of its depth: head and final norm lr, block 1 lr/2, block 0 lr/4, embeddings, [CLS] and
    positions lr/8. Catches: the trainer's schedule overwriting the scale (one rate for all), the decay
    running the wrong way (embeddings fastest), a depth off by one, the final norm counted as a block.
    The logged lr is the schedule's (the head's), and the checkpoint resumes with the same rates."""
    from dataclasses import replace

    from nanofm.engine import TrainConfig
    from nanofm.engine.optim import layer_depths
    from nanofm.families import create

    model = create("vit-debug")  # 2 blocks
    depths, n_layers = layer_depths(model)
    assert n_layers == 2 and depths["cls_token"] == depths["patch_embed.proj.weight"] == depths["pos_embed.weight"] == 0
    assert depths["encoder.layers.1.ff.fc2.weight"] == 2 and depths["encoder.final_norm.weight"] == depths["head.bias"] == 3
    g = torch.Generator().manual_seed(0)
    data = [{"images": torch.randn(1, 28, 28, generator=g), "targets": torch.tensor(i % 10)} for i in range(8)]
    collate = lambda ex: {k: torch.stack([e[k] for e in ex]) for k in ex[0]}  # noqa: E731
    cfg = TrainConfig(steps=1, batch_size=8, lr=1e-3, warmup_steps=0, schedule="constant", weight_decay=0.0,
                      layer_decay=0.5, grad_clip=0.0, eval_every=0, best_metric=None, log_every=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Trainer(model, data, cfg, collate=collate, run_dir=tmp_path / "run", progress=False).fit()
    for name, p in model.named_parameters():
        moved = float((p.detach() - before[name]).abs().max())
        assert moved == pytest.approx(1e-3 * 0.5 ** (3 - depths[name]), rel=1e-3), name
    assert [r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "lr" in r][:1] == [pytest.approx(1e-3)]
    resumed = Trainer(create("vit-debug"), data, replace(cfg, steps=2), collate=collate, run_dir=tmp_path / "run",
                      resume="auto", progress=False)
    assert resumed.step == 1
    rates = sorted({(round(grp["lr"] / 1e-3, 6), grp["lr_scale"]) for grp in resumed.optimizer.param_groups if grp["params"]})
    assert rates == [(s, s) for s in (0.125, 0.25, 0.5, 1.0)]  # the rates the checkpoint restored (a fresh
    # optimizer has lr 1e-3 in every group): a resume that lost them would train the blocks at the head's rate
    with pytest.raises(ValueError, match="one stack of blocks named `layers.N`; EncoderDecoder has 2"):
        make_trainer(tiny_config(layer_decay=0.5))

