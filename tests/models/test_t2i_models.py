"""CLIP, the diffusion prior, the DiT decoder, the verifier and adaLN-Zero, with tiny random weights."""

import torch
import torch.nn.functional as F

from nanofm.core.adaptive import AdaLNZeroBlock, AdaptiveLayerNorm
from nanofm.families.t2i.clip import CLIP, CLIPConfig, TextEncoderConfig, contrastive_loss
from nanofm.families.t2i.diffusion import DiffusionConfig
from nanofm.families.t2i.dit import DiffusionDecoder, DiTConfig
from nanofm.families.t2i.prior import DiffusionPrior, PriorConfig
from nanofm.families.t2i.unclip import UnCLIP
from nanofm.families.t2i.verifier import SceneVerifier, VerifierConfig
from nanofm.families.vit.vit import ViTConfig

E = 16


def tiny_clip() -> CLIP:
    return CLIP(CLIPConfig(text=TextEncoderConfig(vocab_size=40, max_len=12, d_model=32, n_layers=1, n_heads=2, d_ff=64),
                           image=ViTConfig(image_size=16, patch_size=4, in_channels=3, d_model=32, n_layers=1, n_heads=2,
                                           d_ff=64, n_classes=0), embed_dim=E))


def tiny_decoder(**kw) -> DiffusionDecoder:
    kw = {"image_size": 8, "patch_size": 2, **kw}
    return DiffusionDecoder(DiTConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, cond_dim=E, cond_tokens=2,
                                      diffusion=DiffusionConfig(timesteps=50), **kw))


def tiny_prior(**kw) -> DiffusionPrior:
    return DiffusionPrior(PriorConfig(embed_dim=E, text_dim=32, max_text_len=12, d_model=32, n_layers=2, n_heads=2, d_ff=64,
                                      diffusion=DiffusionConfig(timesteps=50, prediction="x0", clip_x0=None), **kw))


def _fit(model, batch, steps, lr=3e-3):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def _mean_loss(model, batch, n=20):
    torch.manual_seed(1)
    with torch.no_grad():
        return sum(model(**batch).loss.item() for _ in range(n)) / n


def test_contrastive_loss_of_matched_embeddings_is_near_zero():
    emb = F.normalize(torch.eye(8, 16), dim=-1)  # 8 orthogonal unit vectors
    assert contrastive_loss(emb, emb, torch.tensor(100.0)) < 1e-6
    assert contrastive_loss(emb, emb.roll(1, 0), torch.tensor(100.0)) > 10  # every caption with the wrong image
    # duplicates in a batch: pairs of the same group are matches (the least the soft-target loss can be: log 2)
    dup = torch.cat([emb[:4], emb[:4]])
    groups = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    assert abs(contrastive_loss(dup, dup, torch.tensor(100.0), groups).item() - torch.log(torch.tensor(2.0)).item()) < 1e-4


def test_clip_overfits_a_tiny_set():
    clip = tiny_clip()
    images = torch.randn(8, 3, 16, 16)
    tokens = torch.randint(5, 40, (8, 6))
    tokens[:, 0] = 2
    batch = {"images": images, "tokens": tokens}
    first = clip(**batch).loss.item()
    last = _fit(clip, batch, 150)
    assert last < 0.05 < first
    clip.eval()
    with torch.no_grad():
        sims = clip.encode_image(images) @ clip.encode_text(tokens).t()
    assert torch.equal(sims.argmax(1), torch.arange(8))
    assert torch.allclose(clip.encode_text(tokens).norm(dim=-1), torch.ones(8), atol=1e-5)


def test_clip_text_padding_does_not_change_the_embedding():
    clip = tiny_clip().eval()
    tokens = torch.tensor([[2, 7, 9, 3]])
    padded = torch.tensor([[2, 7, 9, 3, 0, 0]])
    assert torch.allclose(clip.encode_text(tokens), clip.encode_text(padded), atol=1e-6)


def test_adaln_zero_block_starts_as_the_identity():
    block = AdaLNZeroBlock(32, 2, 64, cond_dim=8)
    x, c = torch.randn(3, 5, 32), torch.randn(3, 8)
    assert torch.equal(block(x, c), x)
    norm = AdaptiveLayerNorm(32, 8)
    assert torch.allclose(norm(x, c), F.layer_norm(x, (32,), eps=1e-6), atol=1e-6)
    with torch.no_grad():  # once trained, the condition changes the output
        block.modulation[1].weight.normal_()
    assert not torch.allclose(block(x, c), block(x, torch.randn(3, 8)))


def test_decoder_starts_at_zero_and_overfits():
    dec = tiny_decoder(cond_drop=0.0, ema_decay=0.0)
    x, t, c = torch.randn(4, 3, 8, 8), torch.randint(0, 50, (4,)), torch.randn(4, E)
    assert torch.equal(dec.net(x, t, c), torch.zeros_like(x))  # adaLN-Zero: the first prediction is 0
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    batch = {"images": images, "cond": F.normalize(torch.randn(4, E), dim=-1)}
    before = _mean_loss(dec, batch)
    _fit(dec, batch, 300)
    assert _mean_loss(dec, batch) < 0.5 * before


def test_decoder_guidance_1_is_conditional_and_every_weight_learns():
    dec = tiny_decoder(cond_drop=0.5)
    with torch.no_grad():
        for p in dec.net.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # leave the zero init, so that every path matters
    x, t, c = torch.randn(3, 3, 8, 8), torch.randint(0, 50, (3,)), torch.randn(3, E)
    with torch.no_grad():
        assert torch.allclose(dec.guided_prediction(x, t, c, 1.0, use_ema=False), dec.net(x, t, c))
        cond, uncond = dec.net(x, t, c), dec.net(x, t, dec.net.null_cond.expand_as(c))
        assert not torch.allclose(cond, uncond, atol=1e-3)
        assert torch.allclose(dec.guided_prediction(x, t, c, 3.0, use_ema=False), uncond + 3 * (cond - uncond), atol=1e-4)
    # every trainable weight gets a non-zero gradient and moves in an optimizer step (a weight cut off from
    # the loss, e.g. a condition path or the learned null condition never used, keeps a zero / no gradient)
    dec.train()
    dropped, drop = [], dec.drop_condition
    dec.drop_condition = lambda cond: dropped.append(drop(cond)) or dropped[-1]
    cond = torch.randn(8, E)
    torch.manual_seed(3)
    dec(torch.randn(8, 3, 8, 8), cond).loss.backward()
    is_null = (dropped[0] != cond).any(1)
    assert is_null.any() and not is_null.all()  # both the null condition and real ones were trained on
    trainable = {n: p for n, p in dec.named_parameters() if p.requires_grad}
    assert "net.null_cond" in trainable and not any(n.startswith("ema.") for n in trainable)
    no_grad = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, no_grad
    before = {n: p.detach().clone() for n, p in trainable.items()}
    torch.optim.Adam(trainable.values(), lr=1e-3).step()
    unchanged = [n for n, p in trainable.items() if torch.equal(p.detach(), before[n])]
    assert not unchanged, unchanged
    samples = dec.sample(torch.randn(2, E), steps=4, guidance=2.0, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 3, 8, 8) and samples.abs().max() <= 1


def test_prior_overfits_and_samples_unit_vectors():
    prior = tiny_prior(cond_drop=0.0, ema_decay=0.0)
    target = F.normalize(torch.randn(4, E), dim=-1)
    batch = {"image_emb": target, "text_emb": F.normalize(torch.randn(4, E), dim=-1),
             "text_tokens": torch.randn(4, 5, 32), "text_pad": torch.tensor([[False] * 5, [False] * 3 + [True] * 2] * 2)}
    before = _mean_loss(prior, batch)
    _fit(prior, batch, 300)
    assert _mean_loss(prior, batch) < 0.2 * before
    z = prior.sample(batch["text_emb"], batch["text_tokens"], batch["text_pad"], steps=25, guidance=1.0, use_ema=False,
                     generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert (z * target).sum(-1).mean() > 0.8  # it learnt each caption's image embedding
    g1 = prior.guided_prediction(z, torch.zeros(4, dtype=torch.long), batch["text_emb"], batch["text_tokens"],
                                 batch["text_pad"], 1.0, use_ema=False)
    b = z.size(0)
    both = prior.net(torch.cat([z, z]), torch.zeros(2 * b, dtype=torch.long), torch.cat([batch["text_emb"]] * 2),
                     torch.cat([batch["text_tokens"]] * 2), torch.cat([batch["text_pad"]] * 2), torch.arange(2 * b) >= b)
    assert torch.allclose(g1, both[:b], atol=1e-5)  # scale 1: the conditional half of the guided batch


def test_verifier_overfits_a_tiny_set():
    ver = SceneVerifier(VerifierConfig(image_size=16, width=8, hidden=32, dropout=0.0))
    images = torch.randn(12, 3, 16, 16)
    items = torch.tensor([[i % 10, -1, -1] if i < 6 else [-1, i % 10, (i + 3) % 10] for i in range(12)])
    colours = torch.tensor([[i % 6, -1, -1] if i < 6 else [-1, i % 6, (i + 1) % 6] for i in range(12)])
    _fit(ver, {"images": images, "items": items, "colours": colours}, 150)
    ver.eval()
    p_items, p_colours = ver.predict(images)
    assert torch.equal(p_items, items) and torch.equal(p_colours, colours)


def test_unclip_generates_with_and_without_the_prior():
    pipe = UnCLIP(tiny_clip(), tiny_prior(), tiny_decoder(image_size=16, patch_size=4))
    tokens = torch.tensor([[2, 7, 9, 3], [2, 8, 3, 0]])
    pad = tokens == 0
    for use_prior in (True, False):
        gen = torch.Generator().manual_seed(0)
        images = pipe.generate(tokens, pad, steps=3, guidance=2.0, use_prior=use_prior, prior_steps=3, generator=gen)
        assert images.shape == (2, 3, 16, 16)
    a = pipe.generate(tokens, pad, steps=3, prior_steps=3, generator=torch.Generator().manual_seed(5))
    b = pipe.generate(tokens, pad, steps=3, prior_steps=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_the_moving_average_steps_once_per_optimizer_step(tmp_path):
    """The Trainer updates the EMA after each optimizer step, never per micro-batch; sampling reads it."""
    from nanofm.engine import TrainConfig, Trainer

    dec = tiny_decoder()
    data = [{"images": torch.randn(3, 8, 8).clamp(-1, 1), "cond": torch.randn(E)} for _ in range(16)]
    cfg = TrainConfig(steps=3, batch_size=8, micro_batch_size=4, lr=1e-3, warmup_steps=0, eval_every=0, save_every=0,
                      log_every=1)
    collate = lambda ex: {k: torch.stack([e[k] for e in ex]) for k in ex[0]}  # noqa: E731
    Trainer(dec, data, cfg, collate=collate, run_dir=tmp_path / "run", progress=False).fit()
    assert int(dec.ema.updates) == 3  # 3 steps of 2 micro-batches each
    assert dec.denoiser() is dec.ema.module and dec.denoiser(use_ema=False) is dec.net
    ema, live = dict(dec.ema.module.named_parameters()), dict(dec.net.named_parameters())
    assert any(not torch.equal(ema[n], live[n]) for n in live)  # an average, not a copy of the last weights
