"""Gaussian diffusion shared by the diffusion prior and the image decoder: the noise schedule, the DDPM
training loss (Ho et al. 2020), ancestral DDPM sampling and DDIM sampling (Song et al. 2021) with a chosen
number of steps and eta, classifier-free guidance (Ho & Salimans 2022) and an exponential moving average
of the weights. No knowledge of what is denoised: a denoiser is any function (x_t, t) -> prediction.

Timesteps t = 0 .. T-1; abar_t = prod_{s <= t} (1 - beta_s) is the share of signal left at step t:
    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)
The network predicts eps (the noise), x0 (the clean sample) or v = sqrt(abar) eps - sqrt(1 - abar) x0
(Salimans & Ho 2022); every sampler first turns the prediction into (x0, eps).

Legend: B batch, (...) the sample's own dimensions.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.progress import progress_bar


@dataclass
class DiffusionConfig:
    timesteps: int = 1000  # T, the steps of the forward process
    schedule: Literal["cosine", "linear"] = "cosine"  # cosine (Nichol & Dhariwal 2021) or DDPM's linear betas
    prediction: Literal["eps", "x0", "v"] = "v"  # what the network outputs
    loss_weighting: Literal["none", "min_snr"] = "none"  # min_snr: Min-SNR-gamma weights (Hang et al. 2023)
    min_snr_gamma: float = 5.0  # gamma of min_snr
    clip_x0: float | None = 1.0  # sampling clamps the predicted x0 to [-clip_x0, clip_x0] (images in [-1, 1]); None: never

    def __post_init__(self):
        if self.timesteps < 2:
            raise ConfigError(f"timesteps must be >= 2, got {self.timesteps}", ("timesteps",))
        if self.clip_x0 is not None and self.clip_x0 <= 0:
            raise ConfigError("clip_x0 must be > 0 (or None)", ("clip_x0",))


def make_betas(timesteps: int, schedule: str) -> Tensor:
    """(T,) float64 betas: linear 1e-4 .. 0.02 (scaled to T as in improved DDPM), or the cosine schedule."""
    if schedule == "linear":
        scale = 1000 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown schedule {schedule!r}; choose 'cosine' or 'linear'")


def _at(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """values (T,) gathered at t (B,), shaped (B, 1, ...) to broadcast against `like` (B, ...)."""
    return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


class NoiseSchedule(nn.Module):
    """The schedule's tables (float64 buffers, not saved: they follow from the config) and every step that
    uses them. Denoisers are callables (x_t (B, ...), t (B,) long) -> prediction (B, ...)."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        self.cfg = cfg
        betas = make_betas(cfg.timesteps, cfg.schedule)
        abar = torch.cumprod(1 - betas, dim=0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        for name, value in {
            "betas": betas,
            "alphas_cumprod": abar,
            "alphas_cumprod_prev": abar_prev,
            # Var of q(x_{t-1} | x_t, x_0): beta_t (1 - abar_{t-1}) / (1 - abar_t)
            "posterior_variance": betas * (1 - abar_prev) / (1 - abar),
        }.items():
            self.register_buffer(name, value, persistent=False)

    @property
    def T(self) -> int:
        return self.cfg.timesteps

    def snr(self, t: Tensor) -> Tensor:
        """Signal-to-noise ratio abar / (1 - abar) at t (B,)."""
        abar = self.alphas_cumprod.to(t.device)[t]
        return abar / (1 - abar)

    # ---------------------------------------------------------------- training

    def sample_timesteps(self, n: int, device: torch.device | str | None = None) -> Tensor:
        return torch.randint(0, self.T, (n,), device=device)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        abar = _at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the network must output for (x0, noise) at t, by cfg.prediction."""
        if self.cfg.prediction == "eps":
            return noise
        if self.cfg.prediction == "x0":
            return x0
        abar = _at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    def loss(self, pred: Tensor, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Mean squared error against the target, per sample weighted by Min-SNR-gamma when asked."""
        err = (pred.float() - self.target(x0, noise, t).float()).pow(2).flatten(1).mean(1)  # (B,)
        if self.cfg.loss_weighting == "min_snr":
            snr = self.snr(t).float()
            w = snr.clamp(max=self.cfg.min_snr_gamma)
            w = {"eps": w / snr, "x0": w, "v": w / (snr + 1)}[self.cfg.prediction]  # the x0-loss weight min(snr, g)
            err = err * w
        return err.mean()

    # ---------------------------------------------------------------- sampling

    def split(self, pred: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """A prediction at (x_t, t) -> (x0, eps), with x0 clamped to +-cfg.clip_x0 (eps made consistent)."""
        abar = _at(self.alphas_cumprod, t, x_t)
        a, s = abar.sqrt(), (1 - abar).sqrt()
        if self.cfg.prediction == "eps":
            eps = pred
            x0 = (x_t - s * eps) / a
        elif self.cfg.prediction == "x0":
            x0 = pred
            eps = (x_t - a * x0) / s
        else:  # v
            x0 = a * x_t - s * pred
            eps = s * x_t + a * pred
        if self.cfg.clip_x0 is not None:
            x0 = x0.clamp(-self.cfg.clip_x0, self.cfg.clip_x0)
            eps = (x_t - a * x0) / s
        return x0, eps

    def ddpm_step(self, pred: Tensor, x_t: Tensor, t: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral step x_t -> x_{t-1} ~ q(x_{t-1} | x_t, x0_hat), the posterior of DDPM."""
        tt = torch.full((x_t.size(0),), t, device=x_t.device, dtype=torch.long)
        x0, _ = self.split(pred, x_t, tt)
        beta, abar, abar_prev = (float(b[t]) for b in (self.betas, self.alphas_cumprod, self.alphas_cumprod_prev))
        mean = (math.sqrt(abar_prev) * beta / (1 - abar)) * x0 + (math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)) * x_t
        if t == 0:
            return mean
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + math.sqrt(float(self.posterior_variance[t])) * noise

    def ddim_timesteps(self, steps: int) -> list[int]:
        """`steps` timesteps from T-1 down to 0, evenly spaced (the full chain when steps >= T)."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        steps = min(steps, self.T)
        return sorted({round(x) for x in torch.linspace(0, self.T - 1, steps, dtype=torch.float64).tolist()}, reverse=True)

    def ddim_step(self, pred: Tensor, x_t: Tensor, t: int, t_prev: int, eta: float = 0.0,
                  generator: torch.Generator | None = None) -> Tensor:
        """x_t -> x_{t_prev} (t_prev = -1: the end, x0). eta 0: deterministic DDIM; eta 1 with every step: DDPM."""
        tt = torch.full((x_t.size(0),), t, device=x_t.device, dtype=torch.long)
        x0, eps = self.split(pred, x_t, tt)
        if t_prev < 0:
            return x0
        abar, abar_prev = float(self.alphas_cumprod[t]), float(self.alphas_cumprod[t_prev])
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
        out = math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            out = out + sigma * torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return out

    @torch.no_grad()
    def sample(self, denoise: Callable[[Tensor, Tensor], Tensor], shape: tuple[int, ...], steps: int | None = None,
               eta: float = 0.0, sampler: Literal["ddim", "ddpm"] = "ddim", generator: torch.Generator | None = None,
               device: torch.device | str = "cpu", x_T: Tensor | None = None, progress: bool = False,
               desc: str = "sampling") -> Tensor:
        """Start from x_T ~ N(0, I) of `shape` and denoise: DDIM over `steps` timesteps (default T) with
        `eta`, or ancestral DDPM over all T. Returns x0 (B, ...)."""
        x = torch.randn(shape, generator=generator, device=device) if x_T is None else x_T.clone()
        if sampler == "ddpm":
            times = list(range(self.T - 1, -1, -1))
        else:
            times = self.ddim_timesteps(steps or self.T)
        for i, t in enumerate(progress_bar(times, desc=desc, unit="step", enabled=progress, leave=False)):
            pred = denoise(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
            if sampler == "ddpm":
                x = self.ddpm_step(pred, x, t, generator)
            else:
                x = self.ddim_step(pred, x, t, times[i + 1] if i + 1 < len(times) else -1, eta, generator)
        return x


def guided(both: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: uncond + scale * (cond - uncond). `both(x2, t2)` predicts on the batch
    doubled, (2B, ...): its first half with the condition, its second half without."""
    c, u = both(torch.cat([x, x]), torch.cat([t, t])).chunk(2)
    return u + scale * (c - u)


class EMA(nn.Module):
    """An exponential moving average of a module's weights (held as a frozen copy, saved in checkpoints).
    Decay warms up as min(decay, (1 + n) / (10 + n)) over the n updates done, so short runs average less."""

    def __init__(self, module: nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.module = copy.deepcopy(module).requires_grad_(False).eval()
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> "EMA":
        super().train(mode)
        self.module.eval()  # the average is never trained (no dropout)
        return self

    @torch.no_grad()
    def update(self, source: nn.Module) -> None:
        n = int(self.updates)
        d = min(self.decay, (1 + n) / (10 + n))
        ema, src = list(self.module.parameters()), list(source.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in src], 1 - d)
        for b_ema, b_src in zip(self.module.buffers(), source.buffers()):
            b_ema.copy_(b_src)
        self.updates += 1


class DiffusionModel(nn.Module):
    """What the prior and the decoder share: a denoising network `net`, its noise schedule, and an
    exponential moving average of its weights, updated after every optimizer step (the Trainer calls
    after_optimizer_step) and used for sampling."""

    def __init__(self, net: nn.Module, diffusion: DiffusionConfig, ema_decay: float):
        super().__init__()
        self.net = net
        self.schedule = NoiseSchedule(diffusion)
        self.ema = EMA(net, ema_decay) if ema_decay > 0 else None

    def after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.update(self.net)

    def denoiser(self, use_ema: bool = True) -> nn.Module:
        """The network sampling uses: the weights' moving average, unless use_ema is False."""
        return self.ema.module if use_ema and self.ema is not None else self.net
