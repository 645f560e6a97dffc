"""The shared Gaussian diffusion: schedule bookkeeping, DDPM and DDIM sampling, classifier-free guidance."""

import math

import pytest
import torch

from nanofm.families.t2i.diffusion import EMA, DiffusionConfig, NoiseSchedule, guided


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_forward_process_at_the_ends(schedule):
    s = NoiseSchedule(DiffusionConfig(timesteps=1000, schedule=schedule))
    x0, noise = torch.randn(4096, 8) * 0.5 + 0.3, torch.randn(4096, 8)
    first = s.q_sample(x0, torch.zeros(4096, dtype=torch.long), noise)
    last = s.q_sample(x0, torch.full((4096,), 999), noise)
    assert (first - x0).abs().max() < 0.05  # t = 0: almost the data
    assert (last - noise).abs().max() < 0.03  # t = T-1: almost pure noise
    assert s.alphas_cumprod[-1] < 1e-4 and s.alphas_cumprod[0] > 0.999


def test_variance_bookkeeping():
    s = NoiseSchedule(DiffusionConfig(timesteps=200, schedule="cosine"))
    abar, betas = s.alphas_cumprod, s.betas
    assert torch.allclose(abar, torch.cumprod(1 - betas, 0))
    assert torch.all(abar[1:] < abar[:-1]) and torch.all((betas > 0) & (betas < 1))
    # unit-variance data keeps unit variance at every t: abar * 1 + (1 - abar) = 1
    x0 = torch.randn(20000, 4)
    for t in (0, 50, 150, 199):
        xt = s.q_sample(x0, torch.full((20000,), t), torch.randn_like(x0))
        assert abs(xt.var().item() - 1) < 0.03
    # posterior variance of q(x_{t-1} | x_t, x0): beta_t (1 - abar_{t-1}) / (1 - abar_t), 0 at t = 0
    t = 100
    expect = betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
    assert math.isclose(float(s.posterior_variance[t]), float(expect), rel_tol=1e-12)
    assert float(s.posterior_variance[0]) == 0.0


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_split_inverts_the_target(prediction):
    s = NoiseSchedule(DiffusionConfig(timesteps=100, prediction=prediction, clip_x0=None))
    x0, noise, t = torch.randn(8, 3), torch.randn(8, 3), torch.randint(0, 100, (8,))
    xt = s.q_sample(x0, t, noise)
    x0_hat, eps_hat = s.split(s.target(x0, noise, t), xt, t)
    assert torch.allclose(x0_hat, x0, atol=1e-4) and torch.allclose(eps_hat, noise, atol=1e-4)


MU, SD = 0.5, 0.3


def _exact_x0(s: NoiseSchedule):
    """The Bayes-optimal x0 predictor for data N(MU, SD^2): E[x0 | x_t]."""
    def denoise(x, t):
        abar = s.alphas_cumprod[t].float()[:, None]
        return MU + abar.sqrt() * SD**2 / (abar * SD**2 + 1 - abar) * (x - abar.sqrt() * MU)
    return denoise


def test_ddim_with_every_step_and_eta_1_is_ddpm():
    # (with the plug-in posterior mean, DDPM matches the data's variance as the steps get small: T = 1000)
    s = NoiseSchedule(DiffusionConfig(timesteps=1000, schedule="linear", prediction="x0", clip_x0=None))
    den = _exact_x0(s)
    ddpm = s.sample(den, (20000, 1), sampler="ddpm", generator=torch.Generator().manual_seed(0))
    ddim = s.sample(den, (20000, 1), steps=1000, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ddpm, ddim, atol=1e-4)  # the same chain, step for step
    for x in (ddpm, ddim):  # and the statistics of the data
        assert abs(x.mean().item() - MU) < 0.01 and abs(x.std().item() - SD) < 0.01
    few = s.sample(den, (20000, 1), steps=250, eta=0.0, generator=torch.Generator().manual_seed(1))
    assert abs(few.mean().item() - MU) < 0.02 and abs(few.std().item() - SD) < 0.02


def test_guidance_mixes_the_conditional_and_unconditional_halves():
    net = torch.nn.Bilinear(3, 2, 3)
    denoise = lambda x, t, c: net(x, c) * (1 + t[:, None].float())  # noqa: E731
    x, t, c, null = torch.randn(5, 3), torch.randint(0, 9, (5,)), torch.randn(5, 2), torch.zeros(5, 2)
    both = lambda x2, t2: denoise(x2, t2, torch.cat([c, null]))  # noqa: E731
    with torch.no_grad():
        assert torch.allclose(guided(both, x, t, 1.0), denoise(x, t, c), atol=1e-6)
        assert torch.allclose(guided(both, x, t, 0.0), denoise(x, t, null), atol=1e-6)
        g3 = guided(both, x, t, 3.0)
        assert torch.allclose(g3, denoise(x, t, null) + 3 * (denoise(x, t, c) - denoise(x, t, null)), atol=1e-5)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_loss_is_the_x0_error_weighted_by_min_snr_gamma(prediction):
    """Min-SNR-gamma (Hang et al. 2023) in any parameterisation: mean of min(SNR, gamma) * |x0_hat - x0|^2.
    Everything on the expected side is written out by hand from the schedule's alphas_cumprod (abar):
    SNR = abar / (1 - abar), x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, and x0_hat from the prediction, so a
    wrong SNR (inverted, square-rooted, off by a step) or a wrong conversion of the weight fails."""
    s = NoiseSchedule(DiffusionConfig(timesteps=100, prediction=prediction, loss_weighting="min_snr", min_snr_gamma=5.0,
                                      clip_x0=None))
    g = torch.Generator().manual_seed(0)
    x0, noise, t = torch.randn(64, 4, generator=g), torch.randn(64, 4, generator=g), torch.randint(0, 100, (64,), generator=g)
    x0, noise = x0.double(), noise.double()
    abar = s.alphas_cumprod[t][:, None]  # (B, 1) float64
    a, b = abar.sqrt(), (1 - abar).sqrt()
    x_t = a * x0 + b * noise
    target = {"eps": noise, "x0": x0, "v": a * noise - b * x0}[prediction]
    pred = target + 0.1 * torch.randn(64, 4, generator=g).double()
    x0_hat = {"eps": (x_t - b * pred) / a, "x0": pred, "v": a * x_t - b * pred}[prediction]
    snr = (abar / (1 - abar)).squeeze(1)
    assert snr.min() < 5.0 < snr.max()  # both sides of gamma are exercised
    expected = (snr.clamp(max=5.0) * (x0_hat - x0).pow(2).mean(1)).mean()
    assert s.loss(pred.float(), x0.float(), noise.float(), t).item() == pytest.approx(expected.item(), rel=1e-4)


def test_ema_follows_its_formula():
    """After n updates the average moves by (1 - d) of the way to the source, d = min(decay, (1 + n) / (10 + n)):
    a plain copy, a swapped d and 1 - d, or a missing warm-up all give other values."""
    src = torch.nn.Linear(2, 2)
    w0 = src.weight.detach().clone()
    ema = EMA(src, decay=0.5)
    assert torch.equal(ema.module.weight, w0)  # starts as a copy
    with torch.no_grad():
        src.weight.add_(1.0)  # the source is now w0 + 1 and stays there
    gap = 1.0  # source - average
    for n in range(12):
        ema.update(src)
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.18, 0.25, ... then capped at 0.5 from n = 8
        gap *= d
        assert torch.allclose(ema.module.weight, w0 + 1.0 - gap, atol=1e-6), n  # n = 0: w0 + 0.9, a copy w0 + 1
    assert int(ema.updates) == 12
    capped = EMA(src, decay=0.05)  # d = min(0.05, 0.1): the decay itself, from the first update
    with torch.no_grad():
        src.weight.add_(2.0)
    capped.update(src)
    assert torch.allclose(capped.module.weight, 0.05 * (w0 + 1.0) + 0.95 * (w0 + 3.0), atol=1e-6)


def test_ema_tracks_the_source():
    src = torch.nn.Linear(2, 2)
    ema = EMA(src, decay=0.5)
    with torch.no_grad():
        src.weight.add_(1.0)
    for _ in range(30):
        ema.update(src)
    assert torch.allclose(ema.module.weight, src.weight, atol=1e-4)
    assert not any(p.requires_grad for p in ema.parameters())
