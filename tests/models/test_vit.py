import pytest
import torch
from torch import nn

from nanofm.core import DropPath, PatchEmbedding
from nanofm.families import create, get_config
from nanofm.families.vit.vit import ViT, ViTConfig
from tests.helpers import copy_block, max_diff

B = 3
pytestmark = pytest.mark.usefixtures("one_thread")


CFG = ViTConfig(patch_size=7, d_model=32, n_layers=2, n_heads=2, d_ff=64, n_classes=5)  # 4x4 grid, 16 patches


def _vit(**overrides) -> ViT:
    return ViT(ViTConfig(**{**CFG.__dict__, **overrides})).eval()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(patch_size=5), "divisible by patch_size"),
        (dict(n_heads=3), "divisible by n_heads"),
        (dict(d_model=30, n_heads=2, pos="sincos"), "divisible by 4"),
        (dict(n_classes=-1), "n_classes"),
        (dict(drop_path=1.0), "drop_path"),
        (dict(patch_dropout=1.0), "patch_dropout"),
    ],
)
def test_config_is_validated(overrides, message):
    with pytest.raises(ValueError, match=message):
        ViTConfig(**{**CFG.__dict__, **overrides})


@pytest.mark.parametrize("pos", ["learned", "sincos"])
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_forward_shapes(pool, pos):
    vit = _vit(pool=pool, pos=pos)
    images, targets = torch.randn(B, 1, 28, 28), torch.tensor([0, 4, 2])
    n_tokens = vit.n_patches + (pool == "cls")
    assert (vit.grid, vit.n_patches, vit.n_prefix_tokens) == (4, 16, int(pool == "cls"))
    assert vit.forward_features(images).shape == (B, n_tokens, 32)
    out = vit(images, targets)
    assert out.logits.shape == (B, 5) and out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert (vit.cls_token is None) == (pool == "mean")  # as timm: a [CLS] token only to pool from
    assert ("pos_embed.weight" in vit.state_dict()) == (pos == "learned")  # sin-cos is a fixed buffer
    assert vit.forward_head(vit.forward_features(images), pre_logits=True).shape == (B, 32)


def test_no_head_returns_pooled_features():
    vit = _vit(n_classes=0)
    assert isinstance(vit.head, nn.Identity)
    assert vit(torch.randn(B, 1, 28, 28)).logits.shape == (B, 32)


def test_sincos_positions_follow_the_grid():
    cls_pos, patch_pos = _vit(pos="sincos").pos_embed()
    assert torch.equal(cls_pos, torch.zeros(1, 32))  # [CLS] gets no position
    grid = patch_pos.view(4, 4, 32)  # (row, column, D), row-major as PatchEmbedding
    for r in range(4):
        assert torch.equal(grid[r, :, :16], grid[r, :1, :16].expand(4, -1))  # same row, same row half
        assert torch.equal(grid[:, r, 16:], grid[:1, r, 16:].expand(4, -1))  # same column, same column half
    assert len({tuple(v.tolist()) for v in patch_pos}) == 16


def test_encoder_equals_torch_pre_norm_layers():
    """Our blocks + final norm == torch.nn.TransformerEncoder(norm_first=True, gelu) with the same weights."""
    vit = _vit()
    layer = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, activation="gelu", batch_first=True, norm_first=True, layer_norm_eps=1e-6)
    ref = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(32, eps=1e-6), enable_nested_tensor=False).eval()
    with torch.no_grad():
        for p in ref.parameters():  # away from the 0 / 1 init so that every weight is checked
            p.add_(torch.randn_like(p) * 0.1)
    for ours, theirs in zip(vit.encoder.layers, ref.layers):
        copy_block(ours, theirs)
    vit.encoder.final_norm.load_state_dict(ref.norm.state_dict())
    images = torch.randn(B, 1, 28, 28)
    with torch.no_grad():
        assert max_diff(vit.forward_features(images), ref(vit.embed(images))) <= 1e-5


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_attention_maps_are_the_forward_path(pool):
    vit = _vit(pool=pool)
    images = torch.randn(B, 1, 28, 28)
    maps = vit.attention_maps(images)
    t = vit.n_patches + vit.n_prefix_tokens
    assert len(maps) == 2 and all(m.shape == (B, 2, t, t) for m in maps)
    assert all(torch.allclose(m.sum(-1), torch.ones(B, 2, t), atol=1e-5) for m in maps)
    with torch.no_grad():  # the explicit path (that returns weights) == the fused SDPA path
        explicit, _ = vit.encoder(vit.embed(images), need_weights=True)
        assert max_diff(explicit, vit.forward_features(images)) <= 1e-5


@pytest.mark.parametrize("pos", ["learned", "sincos"])
def test_ids_keep_selects_patches_after_positions(pos):
    vit = _vit(pos=pos)
    images = torch.randn(B, 1, 28, 28)
    ids_keep = torch.stack([torch.randperm(16)[:5] for _ in range(B)])  # (B, 5)
    with torch.no_grad():
        full = vit.embed(images)  # (B, 1+16, D)
        kept = vit.embed(images, ids_keep)
        assert torch.equal(kept[:, 0], full[:, 0])
        assert torch.equal(kept[:, 1:], full[:, 1:].gather(1, ids_keep[..., None].expand(-1, -1, 32)))
        assert torch.equal(vit.forward_features(images, torch.arange(16).expand(B, -1)), vit.forward_features(images))
        # the features of the kept patches do not depend on the pixels of the other patches
        hidden = torch.ones(B, 16).scatter(1, ids_keep, 0.0).view(B, 1, 4, 1, 4, 1).expand(B, 1, 4, 7, 4, 7).reshape(B, 1, 28, 28)
        other = images + hidden * torch.randn_like(images)
        assert max_diff(vit.forward_features(other, ids_keep), vit.forward_features(images, ids_keep)) <= 1e-6


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_every_parameter_gets_a_gradient(pool):
    vit = _vit(pool=pool).train()
    vit(torch.randn(B, 1, 28, 28), torch.tensor([0, 1, 2])).loss.backward()
    missing = [n for n, p in vit.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_init_follows_timm_and_mae():
    vit = _vit()
    w = vit.encoder.layers[0].ff.fc1.weight
    assert w.abs().max() <= 0.04 and 0.015 < w.std() < 0.025  # truncated N(0, 0.02)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in vit.modules() if isinstance(m, nn.Linear))
    proj = vit.patch_embed.proj.weight  # (D, C, P, P), xavier-uniform as a Linear of fan-in C*P*P
    assert proj.abs().max() <= (6 / (49 + 32)) ** 0.5


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    vit = _vit(drop_path=0.5)
    plain = _vit()
    plain.load_state_dict(vit.state_dict())
    images = torch.randn(8, 1, 28, 28)
    assert isinstance(vit.encoder.layers[0].drop_path, nn.Identity)  # rates 0 -> drop_path across depth
    assert vit.encoder.layers[-1].drop_path.p == 0.5
    with torch.no_grad():
        assert torch.equal(vit(images).logits, plain(images).logits)
        assert not torch.allclose(vit.train()(images).logits, plain(images).logits)
    drop = DropPath(0.25).train()
    x = torch.ones(4000, 3)
    y = drop(x)
    assert ((y == 0) | (y == torch.tensor(1 / 0.75))).all() and abs(y.mean().item() - 1) < 0.05
    assert torch.equal(y[:, 0:1].expand(-1, 3), y)  # one decision per sample


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_patch_dropout_feeds_a_random_share_of_each_image_only_in_training(pool):
    """model.patch_dropout=0.75 (16 patches): a training forward hands the encoder 4 patches of each image
    (plus [CLS]), a different choice per image, and the logits are those of the plain model on exactly those
    patches; in eval mode every patch, the same logits as without it. Catches: the share never applied (16
    rows), applied at evaluation, one choice for the whole batch, patches kept without their own positions."""
    torch.manual_seed(0)
    vit, plain = _vit(patch_dropout=0.75, pool=pool), _vit(pool=pool)
    plain.load_state_dict(vit.state_dict())
    images = torch.randn(B, 1, 28, 28)
    seen = []
    hook = vit.drop.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))  # the encoder's input tokens
    with torch.no_grad():
        assert torch.equal(vit.eval()(images).logits, plain.eval()(images).logits)
        assert seen == [16 + (pool == "cls")]
        torch.manual_seed(1)
        kept = vit.patches_kept(B)  # (B, 4): the choice the next training forward makes after the same seed
        assert kept.shape == (B, 4) and len({tuple(sorted(r.tolist())) for r in kept}) == B
        torch.manual_seed(1)
        logits = vit.train()(images).logits
        assert seen[-1] == 4 + (pool == "cls")
        only_cls = slice(0, 1) if pool == "cls" else None
        assert max_diff(logits, plain.forward_head(plain.forward_features(images, kept, only_cls))) <= 1e-5
        assert max_diff(logits, plain(images).logits) > 1e-3
    hook.remove()
    assert _vit().patches_kept(B) is None


def test_overfits_one_batch():
    torch.manual_seed(0)
    vit = _vit(n_classes=4).train()
    images, targets = torch.randn(8, 1, 28, 28), torch.arange(8) % 4
    opt = torch.optim.AdamW(vit.parameters(), lr=3e-3)
    for _ in range(40):  # 100% from about step 10
        loss = vit(images, targets).loss
        opt.zero_grad(), loss.backward(), opt.step()
    assert (vit.eval()(images).logits.argmax(-1) == targets).all()


def test_presets():
    vit = create("vit-debug")
    assert isinstance(vit, ViT) and vit(torch.randn(2, 1, 28, 28)).logits.shape == (2, 10)
    for name in ("vit-fmnist-xs", "vit-fmnist-s"):
        cfg = get_config(name)
        assert (cfg.image_size, cfg.in_channels, cfg.patch_size, cfg.n_classes) == (28, 1, 4, 10)
    tiny = get_config("vit-tiny")
    assert (tiny.image_size, tiny.patch_size, tiny.d_model, tiny.n_layers, tiny.n_heads, tiny.d_ff) == (224, 16, 192, 12, 3, 768)
    with torch.device("meta"):  # no memory, no init time
        assert 5.70e6 < sum(p.numel() for p in ViT(tiny).parameters()) < 5.73e6  # DeiT-Ti: 5.7M


def test_cls_only_last_layer_gives_the_full_paths_logits_and_gradients():
    vit = _vit(pool="cls").train()  # no dropout in _vit: both passes see the same function
    x, y = torch.randn(B, 1, 28, 28), torch.tensor([0, 1, 2])
    fast = vit(x, y)
    fast.loss.backward()
    fast_grads = {n: p.grad.clone() for n, p in vit.named_parameters()}
    vit.zero_grad()
    full = vit.forward_head(vit.forward_features(x))  # every position through every layer
    nn.functional.cross_entropy(full, y).backward()
    assert max_diff(fast.logits, full) < 1e-5
    for n, p in vit.named_parameters():
        assert torch.allclose(fast_grads[n], p.grad, atol=1e-6), n


def test_patch_embedding_equals_its_convolution():
    """The matmul on flattened patches gives the stride-P convolution's output and gradients."""
    embed = PatchEmbedding(8, 4, 3, 16)
    images = torch.randn(2, 3, 8, 8, requires_grad=True)
    ours = embed(images)
    conv = embed.proj(images).flatten(2).transpose(1, 2)  # (B, D, 2, 2) -> (B, 4, D)
    assert torch.allclose(ours, conv, atol=1e-6)
    g = torch.randn_like(ours)
    grads = torch.autograd.grad(ours, [images, embed.proj.weight, embed.proj.bias], g)
    ref = torch.autograd.grad(conv, [images, embed.proj.weight, embed.proj.bias], g)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, ref))
