"""Tiny run folders of every kind `nanofm serve` serves, trained for a few steps with the project's own test
helpers (tests/tasks): a masked LM, a translator, a text classifier and a tagger fine-tuned from the masked LM,
an image classifier and an unCLIP folder. Serving needs working folders, not good models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nanofm.cli import main
from tests.tasks.conftest import CONFIG as MLM_CONFIG, TINY as MLM_TINY, _corpus
from tests.tasks.test_finetune import _task_dirs
from tests.tasks.test_predict_inputs import FIXTURE as TRANSLATION_FIXTURE, TRANSLATION_CONFIG
from tests.tasks.test_t2i import _train_runs
from tests.tasks.test_vision import TINY as VIT_TINY, _patterns
from tests.vision.fakes import write_fake_fashion_mnist, write_idx

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = ["train.steps=2", "train.batch_size=4", "train.warmup_steps=1", "train.eval_every=2", "train.save_every=2",
        "--no-progress"]


def _mlm(tmp: Path) -> Path:
    data = _corpus(tmp)
    assert main(["pretrain", str(MLM_CONFIG), f"data.dir={data}", *MLM_TINY, *FAST, "--out", str(tmp / "mlm")]) == 0
    return tmp / "mlm"


def _translation(tmp: Path) -> Path:
    data = tmp / "pairs"
    data.mkdir()
    for name in ("train.tsv", "valid.tsv", "test.tsv"):
        (data / name).write_text((TRANSLATION_FIXTURE / name).read_text())
    tiny = ["model.d_model=16", "model.n_heads=2", "model.n_encoder_layers=1", "model.n_decoder_layers=1", "model.d_ff=32"]
    assert main(["train", str(TRANSLATION_CONFIG), f"data.dir={data}", "data.vocab_size=120", "data.bleu_sentences=1",
                 "data.test_beam=1", *tiny, *FAST, "--out", str(tmp / "translate")]) == 0
    return tmp / "translate"


def _vit(tmp: Path) -> Path:
    import numpy as np

    src, rng = tmp / "idx", np.random.default_rng(0)
    src.mkdir()
    for prefix, n in (("train", 80), ("t10k", 20)):
        images, labels = _patterns(n, rng)
        write_idx(src / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(src / f"{prefix}-labels-idx1-ubyte.gz", labels)
    data = tmp / "fmnist"
    assert main(["data", "prepare", "fashion-mnist", "--source", str(src), "--out", str(data), "--val-size", "20"]) == 0
    assert main(["train", str(CONFIGS / "vit-fmnist.yaml"), f"data.dir={data}", *VIT_TINY, "data.augment.flip=false",
                 *FAST, "--out", str(tmp / "vit")]) == 0
    return tmp / "vit"


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """{"fill": mlm run, "translate": ..., "classify": ..., "tag": ..., "vit": ..., "t2i": unCLIP folder}."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats two contending ones on a busy machine
    try:
        tmp = tmp_path_factory.mktemp("serve-runs")
        runs = {"fill": _mlm(tmp), "translate": _translation(tmp), "vit": _vit(tmp)}
        cls_task, tag_task = _task_dirs(tmp)
        for name, task in (("classify", cls_task), ("tag", tag_task)):
            assert main(["finetune", str(runs["fill"]), "--task", str(task), "--out", str(tmp / name), *FAST]) == 0
            runs[name] = tmp / name
        fmnist = write_fake_fashion_mnist(tmp / "fmnist-idx", n_train=600, n_test=600)
        (tmp / "t2i").mkdir()
        runs["t2i"] = _train_runs(tmp / "t2i", fmnist) / "unclip"
        return runs
    finally:
        torch.set_num_threads(threads)


def start_server(runs: list[Path], *options: str, timeout_s: float = 90.0):
    """A real `nanofm serve` process on a free loopback port: (process, base URL). Stop it with stop_server."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nanofm", "serve", *map(str, runs), "--port", str(port), "--device", "cpu",
                             *options], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nanofm serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("nanofm serve did not answer /health in time")


def stop_server(proc) -> tuple[int, str, str]:
    """Ctrl-C (SIGINT), as a user would: (exit status, stdout, stderr)."""
    import signal

    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err
