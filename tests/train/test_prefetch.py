"""Collating ahead in a background thread changes no batch, no step and no resume."""

import threading

import pytest
import torch

from nanofm.config import to_yaml
from nanofm.engine import TrainConfig, Trainer, collate_generator
from nanofm.engine.prefetch import Prefetcher, collate_rng
from nanofm.engine.tracking import read_metrics
from nanofm.families.seq2seq.copy import build
from nanofm.families.t2i.task import draw_caption
from nanofm.families.vit.task import ImageCollate
from nanofm.vision.augment import AugmentConfig
from tests.train.common import tiny_config, weights


def random_subsets(collate):
    """A collate with randomness that matters: each example kept with probability 3/4, drawn from the
    generator the Trainer seeds per micro-batch (so the test also fails if that generator is missing)."""

    def draw(examples):
        g = collate_generator()
        assert g is not None, "a training collate runs without its seeded generator"
        keep = torch.rand(len(examples), generator=g) < 0.75
        keep[0] = True
        return collate([e for e, k in zip(examples, keep.tolist()) if k])

    return draw


def trainer(cfg, run_dir=None, resume=None, collate=None):
    parts = build(cfg)
    return Trainer(parts.model, parts.train_data, cfg.train, collate=collate or random_subsets(parts.collate),
                   run_dir=run_dir, config_yaml=to_yaml(cfg), resume=resume, progress=False)


def losses(run_dir) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def config(prefetch):
    # dropout draws from the global RNG between collates: a collate thread using it would shift every mask
    return tiny_config(dropout=0.1, steps=8, batch_size=16, micro_batch_size=4, prefetch=prefetch)


def test_prefetching_trains_bit_identically(tmp_path):
    inline = trainer(config(0), tmp_path / "a")
    inline.fit()  # (each fit before the next Trainer: a Trainer seeds the global RNG that dropout draws from)
    ahead = trainer(config(3), tmp_path / "b")
    ahead.fit()
    assert inline.prefetch == 0 and ahead.prefetch == 3
    for k, v in weights(inline).items():
        assert torch.equal(v, weights(ahead)[k]), k
    assert losses(tmp_path / "a") == losses(tmp_path / "b") and len(losses(tmp_path / "a")) == 8
    assert not [t for t in threading.enumerate() if t.name == "nanofm-prefetch"]  # the thread is gone


def test_resume_with_prefetching_is_bit_identical(tmp_path):
    straight = trainer(config(0))
    straight.fit()
    first = trainer(config(2), tmp_path / "run")
    first.fit(stop_after_micro_batches=10)  # inside step 3's window, with batches prefetched beyond it
    resumed = trainer(config(2), tmp_path / "run", resume="auto")
    assert resumed.resumed_from.name == "step-000002.micro-2"
    resumed.fit()
    for k, v in weights(straight).items():
        assert torch.equal(v, weights(resumed)[k]), k


def test_a_collate_error_reaches_the_loop_with_its_message():
    cfg = config(2)
    parts = build(cfg)
    calls = []

    def failing(examples):
        calls.append(1)
        if len(calls) == 6:
            raise ValueError("data.jsonl line 7: 'targets' is missing")
        return parts.collate(examples)

    t = trainer(cfg, collate=failing)
    with pytest.raises(ValueError, match="data.jsonl line 7: 'targets' is missing"):
        t.fit()
    assert not [t for t in threading.enumerate() if t.name == "nanofm-prefetch"]


def test_prefetcher_order_restart_and_depth():
    made = []

    def produce(pos):
        made.append(pos)
        return pos[0] * 10 + pos[1]

    p = Prefetcher(produce, lambda pos: (pos[0], pos[1] + 1) if pos[1] < 1 else (pos[0] + 1, 0), (0, 0), depth=2)
    assert [p.get((0, 0)), p.get((0, 1)), p.get((1, 0))] == [0, 1, 10]
    assert p.get((5, 1)) == 51  # a jump restarts the thread there
    p.close()
    assert made[:3] == [(0, 0), (0, 1), (1, 0)] and (5, 1) in made
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(produce, lambda pos: pos, (0, 0), depth=0)


def test_collate_randomness_comes_from_the_seeded_generator():
    """The image augmentation and the caption draw repeat exactly at the same (seed, rank, step, micro-batch)
    and leave the global RNG alone."""
    collate = ImageCollate([0.5], [0.25], AugmentConfig(crop_scale=(0.5, 1.0), translate=2))
    examples = [{"images": torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8), "targets": torch.tensor(i),
                 "augment": True} for i in range(8)]
    captions = {"es": [f"frase {i}" for i in range(20)], "en": [f"sentence {i}" for i in range(20)]}
    state = torch.get_rng_state()
    batches, drawn = [], []
    for micro in (0, 0, 1):
        with collate_rng(seed=3, step=5, micro=micro):
            batches.append(collate(examples)["images"])
            drawn.append([draw_caption(captions, ["es", "en"]) for _ in range(6)])
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(batches[0], batches[1]) and not torch.equal(batches[0], batches[2])
    assert drawn[0] == drawn[1] != drawn[2]
    assert collate_generator() is None  # outside a training collate: the global RNG


def test_prefetch_must_not_be_negative():
    with pytest.raises(ValueError, match="prefetch"):
        TrainConfig(prefetch=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="page-locked memory needs CUDA")
def test_batches_are_pinned_for_the_gpu():
    from nanofm.engine.prefetch import pin

    batch = pin({"x": torch.ones(2), "n": 3, "pair": [torch.zeros(1), "a"]})
    assert batch["x"].is_pinned() and batch["pair"][0].is_pinned() and batch["n"] == 3 and batch["pair"][1] == "a"
