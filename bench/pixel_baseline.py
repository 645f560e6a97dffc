"""What raw pixels alone reach on the vision part's labelled subset: logistic regression (L-BFGS, L2) on the
standardised pixels of the demo's 200 labelled Fashion-MNIST images, and 1-nearest-neighbour; test accuracy
on all 10,000 test images. The ceiling a learned representation has to pass before it shows in the table.

  python bench/pixel_baseline.py --labels 200
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from nanofm.tasks import build_task, load_task_config


def pixels(data) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H*W) float pixels and (N,) class ids of an image-classification split."""
    rows = [data[i] for i in range(len(data))]
    return torch.stack([r["images"].float().flatten() for r in rows]), torch.tensor([int(r["targets"]) for r in rows])


def logistic_regression(x: torch.Tensor, y: torch.Tensor, l2: float, n_classes: int = 10) -> torch.Tensor:
    """Weights (D + 1, C) of an L2-regularised softmax regression, fitted by L-BFGS."""
    w = torch.zeros(x.shape[1] + 1, n_classes, requires_grad=True)
    xb = F.pad(x, (0, 1), value=1.0)
    opt = torch.optim.LBFGS([w], max_iter=500)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xb @ w, y) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, default=200)
    p.add_argument("--config", default="configs/vit-fmnist.yaml")
    a = p.parse_args()
    parts = build_task(load_task_config(a.config, [f"data.labels={a.labels}"]))
    (xtr, ytr), (xte, yte) = pixels(parts.train_data), pixels(parts.test_data)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-3
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    result = {"labels": len(ytr), "test_images": len(yte)}
    for l2 in (1e-3, 1e-2, 1e-1):
        w = logistic_regression(xtr, ytr, l2)
        result[f"logistic_l2_{l2:g}"] = round((F.pad(xte, (0, 1), value=1.0) @ w).argmax(1).eq(yte).float().mean().item(), 4)
    result["1nn"] = round(ytr[torch.cdist(xte, xtr).argmin(1)].eq(yte).float().mean().item(), 4)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
