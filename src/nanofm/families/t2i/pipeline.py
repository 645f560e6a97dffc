"""The text-to-image pipeline as a user meets it: an unCLIP folder ties three runs together (CLIP, prior,
decoder) and `TextToImage` paints captions with them; `load_verifier` opens the scene verifier that scores them.

An unCLIP folder holds unclip.yaml, naming the runs (paths relative to the folder):
    clip: ../clip-scenes
    prior: ../prior-scenes
    decoder: ../decoder-scenes
`nanofm unclip OUT --prior RUN --decoder RUN` writes it (the CLIP run is the one both were trained on).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
import yaml
from torch import Tensor

from nanofm.config import ConfigError
from nanofm.families.t2i.dit import DiffusionDecoder
from nanofm.families.t2i.prior import DiffusionPrior
from nanofm.families.t2i.task import CaptionEncoder, from_model_range, load_clip
from nanofm.families.t2i.unclip import UnCLIP
from nanofm.families.t2i.verifier import SceneVerifier
from nanofm.runs import load_trained, open_run, pick_device


def write_unclip(out: str | Path, prior: str | Path, decoder: str | Path, clip: str | Path | None = None) -> Path:
    """Write out/unclip.yaml for a prior run and a decoder run trained on the same CLIP run."""
    out = Path(out)
    p_cfg, d_cfg = (open_run(r, None).task_config() for r in (prior, decoder))
    if p_cfg.task != "diffusion-prior" or d_cfg.task != "diffusion-decoder":
        raise ConfigError(f"--prior must be a diffusion-prior run and --decoder a diffusion-decoder run "
                          f"(got {p_cfg.task!r} and {d_cfg.task!r})")
    clip = Path(clip or d_cfg.clip)
    if Path(p_cfg.clip).resolve() != Path(d_cfg.clip).resolve():
        raise ConfigError(f"the prior was trained on CLIP run {p_cfg.clip}, the decoder on {d_cfg.clip}: they must share one")
    out.mkdir(parents=True, exist_ok=True)
    rel = {k: os.path.relpath(Path(v).resolve(), out.resolve()) for k, v in
           {"clip": clip, "prior": prior, "decoder": decoder}.items()}
    (out / "unclip.yaml").write_text(yaml.safe_dump(rel, sort_keys=False))
    return out / "unclip.yaml"


class TextToImage:
    """A loaded unCLIP folder: `TextToImage.load("runs/unclip")(["un vestido rojo"] * 8, seed=0)` -> images in [0, 1]."""

    def __init__(self, pipeline: UnCLIP, encode: CaptionEncoder, data_dir: str, device: str | torch.device | None = None):
        self.device = pick_device(device)
        self.pipeline, self.encode = pipeline.eval().to(self.device), encode
        self.data_dir = data_dir  # the scenes the runs were trained on

    @classmethod
    def load(cls, run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = None) -> "TextToImage":
        run_dir = Path(run_dir)
        path = run_dir / "unclip.yaml"
        if not path.is_file():
            raise ConfigError(f"{run_dir}: no unclip.yaml (write one with `nanofm unclip {run_dir} --prior RUN --decoder RUN`)")
        runs = yaml.safe_load(path.read_text()) or {}
        missing = {"clip", "prior", "decoder"} - set(runs)
        if missing:
            raise ConfigError(f"{path}: missing {', '.join(sorted(missing))}")
        where = {k: run_dir / v for k, v in runs.items()}
        _, clip, encode = load_clip(where["clip"], checkpoint)
        _, prior = load_trained(where["prior"], "diffusion-prior", "a diffusion-prior", DiffusionPrior, checkpoint)
        d_cfg, decoder = load_trained(where["decoder"], "diffusion-decoder", "a diffusion-decoder", DiffusionDecoder, checkpoint)
        return cls(UnCLIP(clip, prior, decoder), encode, d_cfg.data.dir, device)

    @torch.no_grad()
    def __call__(self, captions: Sequence[str], steps: int = 50, guidance: float = 3.0, eta: float = 0.0,
                 use_prior: bool = True, prior_steps: int = 64, prior_guidance: float = 1.0, seed: int | None = None,
                 progress: bool = False, batch: int = 250) -> Tensor:
        """One image per caption -> (N, C, H, W) in [0, 1]. The same seed gives the same images."""
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        out = []
        for i in range(0, len(captions), batch):
            tokens, pad = self.encode(captions[i : i + batch])
            out.append(self.pipeline.generate(tokens.to(self.device), pad.to(self.device), steps, guidance, eta, use_prior,
                                              prior_steps, prior_guidance, gen, progress).cpu())
        return from_model_range(torch.cat(out))


def load_verifier(run_dir: str | Path, checkpoint: str = "best") -> SceneVerifier:
    return load_trained(run_dir, "scene-verifier", "a scene-verifier", SceneVerifier, checkpoint)[1].eval()
