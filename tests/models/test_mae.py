import dataclasses

import pytest
import torch
import torch.nn.functional as F

from nanofm.core import PatchEmbedding
from nanofm.families import create, get_config
from nanofm.families.vit.mae import MAE, MAEConfig, load_pretrained_encoder as load_mae_encoder, patchify, random_masking, unpatchify
from nanofm.families.vit.vit import ViT, ViTConfig
from tests.helpers import max_diff

B = 4
VIT = ViTConfig(patch_size=7, d_model=32, n_layers=2, n_heads=2, d_ff=64, n_classes=0, pos="sincos")  # 16 patches
DEC = MAEConfig(decoder_dim=32, decoder_layers=1, decoder_heads=2, decoder_d_ff=64)


pytestmark = pytest.mark.usefixtures("one_thread")


def _mae(vit: ViTConfig = VIT, **overrides) -> MAE:
    return MAE(ViT(vit), dataclasses.replace(DEC, **overrides))


def _ramps(n: int, size: int = 28) -> torch.Tensor:
    """Linear ramps in random directions: every normalised patch of an image is the same, so the hidden
    patches are predictable from the visible ones."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    angle = torch.rand(n, 1, 1) * 6.28
    return (x * angle.cos() + y * angle.sin())[:, None]  # (n, 1, H, W)


def test_patchify_round_trip():
    images = torch.randn(2, 3, 8, 12)
    patches = patchify(images, 4)
    assert patches.shape == (2, 6, 48)
    assert torch.equal(unpatchify(patches, 4, 3, 8, 12), images)
    square = torch.randn(2, 1, 28, 28)
    assert torch.equal(unpatchify(patchify(square, 7), 7, 1), square)
    with pytest.raises(ValueError, match="divisible"):
        patchify(square, 5)


def test_patch_order_matches_patch_embedding():
    """Row-major patches, as PatchEmbedding's tokens; inside a patch, pixels row by row with channels last."""
    p, c = 4, 3
    images = torch.randn(2, c, 8, 12)
    embed = PatchEmbedding(8, p, c, p * p * c)
    embed.grid = None  # (not square here; forward does not use it)
    with torch.no_grad():  # output k copies pixel (row i, column j, channel ch), k = (i * p + j) * c + ch
        w = torch.zeros(p, p, c, c, p, p)
        for i in range(p):
            for j in range(p):
                for ch in range(c):
                    w[i, j, ch, ch, i, j] = 1.0
        embed.proj.weight.copy_(w.reshape(p * p * c, c, p, p)), embed.proj.bias.zero_()
        assert max_diff(embed(images), patchify(images, p)) <= 1e-6
    grey = torch.randn(2, 1, 8, 12)  # one channel: exactly F.unfold's (B, P*P, N), transposed
    assert torch.equal(patchify(grey, p), F.unfold(grey, p, stride=p).transpose(1, 2))


def test_random_masking():
    ids_keep, ids_restore, mask = random_masking(5, 49, 0.75)
    k = round(49 * 0.25)  # 12
    assert ids_keep.shape == (5, k) and ids_restore.shape == (5, 49) and mask.shape == (5, 49)
    assert (mask.sum(1) == 49 - k).all() and mask.dtype == torch.float32
    for row in range(5):  # distinct patches, exactly the kept ones unmasked
        assert len(set(ids_keep[row].tolist())) == k
        assert set(ids_keep[row].tolist()) == set((mask[row] == 0).nonzero().flatten().tolist())
    # ids_restore inverts the shuffle: gathering [kept tokens..., masked tokens...] restores the order
    x = torch.randn(5, 49, 3)
    ids_shuffle = ids_restore.argsort(dim=1)
    assert torch.equal(ids_shuffle[:, :k], ids_keep)
    kept, masked = (x.gather(1, ids[..., None].expand(-1, -1, 3)) for ids in (ids_keep, ids_shuffle[:, k:]))
    assert torch.equal(torch.cat([kept, masked], dim=1).gather(1, ids_restore[..., None].expand(-1, -1, 3)), x)
    assert random_masking(2, 16, 0.5)[0].shape == (2, 8) and random_masking(2, 10, 0.75)[0].shape == (2, 2)  # round(2.5)


def test_random_masking_with_a_generator_is_deterministic():
    draw = [random_masking(3, 16, 0.75, torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert all(torch.equal(a, b) for a, b in zip(draw[0], draw[1]))
    assert not torch.equal(draw[0][0], draw[2][0])


def test_forward_shapes_and_loss_on_masked_patches_only():
    mae = _mae()
    images = torch.randn(B, 1, 28, 28)
    out = mae(images, targets=torch.zeros(B, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (B, 16, 49) and out.loss.ndim == 0
    assert out.n_targets == B * 12  # 16 - round(16 * 0.25) masked patches per image
    # The loss by hand, from the MAE paper (norm_pix_loss): cut each image into its 4 x 4 grid of 7 x 7
    # patches; normalise a patch's 49 pixels by that patch's own mean and (unbiased, as MAE's code) variance
    # + 1e-6; square error against the prediction, averaged over the patch's pixels; then averaged over the
    # HIDDEN patches only: those the same draw of random_masking did not keep. Catches: normalising per
    # image or not at all, a biased variance, the loss on visible or on all patches, an inverted mask.
    latent, mask, ids_restore = mae.forward_encoder(images, torch.Generator().manual_seed(0))
    pred = mae.forward_decoder(latent, ids_restore)  # (B, 16, 49): patches row-major, pixels row-major
    ids_keep = random_masking(B, 16, 0.75, torch.Generator().manual_seed(0))[0]  # the visible patches
    errors = []
    for b in range(B):
        for k in set(range(16)) - set(ids_keep[b].tolist()):
            r, c = divmod(k, 4)
            pixels = images[b, 0, 7 * r : 7 * r + 7, 7 * c : 7 * c + 7].reshape(49).double()
            mean = pixels.sum() / 49
            var = ((pixels - mean) ** 2).sum() / 48
            target = (pixels - mean) / (var + 1e-6).sqrt()
            errors.append(((pred[b, k].double() - target) ** 2).mean().item())
    assert len(errors) == B * 12
    assert out.loss.item() == pytest.approx(sum(errors) / len(errors), rel=1e-5)
    assert torch.equal(out.logits, pred)
    for other in (_mae(norm_pix_loss=False), _mae(pos="learned")):
        out = other(images, generator=torch.Generator().manual_seed(0))
        assert out.logits.shape == (B, 16, 49) and out.loss > 0 and torch.isfinite(out.loss)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_encoder_sees_only_the_visible_patches(pool):
    mae = _mae(dataclasses.replace(VIT, pool=pool))
    vit = mae.encoder
    images = torch.randn(B, 1, 28, 28)
    with torch.no_grad():
        latent, mask, _ = mae.forward_encoder(images, torch.Generator().manual_seed(1))
        ids_keep = random_masking(B, 16, 0.75, torch.Generator().manual_seed(1))[0]
        assert latent.shape == (B, 4 + vit.n_prefix_tokens, 32)
        assert torch.equal(latent, vit.forward_features(images, ids_keep))
        hidden = mask.view(B, 1, 4, 1, 4, 1).expand(B, 1, 4, 7, 4, 7).reshape(B, 1, 28, 28)
        noisy = images + hidden * torch.randn_like(images)  # change only the masked pixels
        again, _, _ = mae.forward_encoder(noisy, torch.Generator().manual_seed(1))
        assert max_diff(again, latent) <= 1e-6
        out = mae(images, generator=torch.Generator().manual_seed(1))
        assert out.logits.shape == (B, 16, 49)


def test_determinism_with_a_generator():
    mae = _mae()
    images = torch.randn(B, 1, 28, 28)
    a, b, c = (mae(images, generator=torch.Generator().manual_seed(s)) for s in (3, 3, 4))
    assert torch.equal(a.loss, b.loss) and torch.equal(a.logits, b.logits)
    assert not torch.equal(a.logits, c.logits)


def test_mae_holds_the_vit_and_its_weights_fine_tune_a_vit():
    vit = ViT(VIT)
    mae = MAE(vit, DEC)
    assert mae.encoder is vit
    sd = mae.state_dict()
    assert {k[len("encoder.") :] for k in sd if k.startswith("encoder.")} == set(vit.state_dict())
    classifier = ViT(dataclasses.replace(VIT, n_classes=10))
    assert load_mae_encoder(classifier, sd) == ["head.weight", "head.bias"]  # left as initialised
    images = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(classifier.forward_features(images), vit.forward_features(images))
    with pytest.raises(ValueError, match="missing"):  # learned positions cannot come from a sin-cos MAE
        load_mae_encoder(ViT(dataclasses.replace(VIT, pos="learned")), sd)


def test_reconstruct():
    mae = _mae().eval()
    images = torch.randn(B, 1, 28, 28)
    masked, filled = mae.reconstruct(images, torch.Generator().manual_seed(0))
    _, mask, _ = mae.forward_encoder(images, torch.Generator().manual_seed(0))
    m = mask[..., None].bool()  # (B, N, 1)
    assert masked.shape == filled.shape == images.shape
    assert (patchify(masked, 7).masked_select(m) == 0).all()
    assert torch.equal(patchify(filled, 7).masked_select(~m), patchify(images, 7).masked_select(~m))
    # a perfect prediction of the normalised pixels gives back the images: de-normalisation is right
    mae.forward_decoder = lambda latent, ids_restore: mae.pixel_targets(images)[0]
    assert max_diff(mae.reconstruct(images, torch.Generator().manual_seed(0))[1], images) <= 1e-5


def test_every_parameter_gets_a_gradient():
    mae = _mae(dataclasses.replace(VIT, drop_path=0.1))
    mae(torch.randn(B, 1, 28, 28)).loss.backward()
    missing = [n for n, p in mae.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_loss_falls_on_a_tiny_set():
    torch.manual_seed(0)
    mae = _mae()
    images, gen = _ramps(16), torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(mae.parameters(), lr=2e-3)
    losses = []
    for _ in range(50):  # a new mask every step
        loss = mae(images, generator=gen).loss
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    # predicting each patch's mean (0 after normalisation) scores about 1: this learned the ramps
    assert last < 0.5 and last < 0.3 * first


def test_config_is_validated():
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEConfig(mask_ratio=1.0)
    with pytest.raises(ValueError, match="divisible by decoder_heads"):
        MAEConfig(decoder_dim=30, decoder_heads=4)
    with pytest.raises(ValueError, match="no visible"):
        _mae(mask_ratio=0.99)  # 16 patches: none left visible


def test_presets():
    mae = create("mae-debug", **{"mae.mask_ratio": 0.5})
    assert isinstance(mae, MAE) and isinstance(mae.encoder, ViT) and mae.cfg.mask_ratio == 0.5
    out = mae(torch.randn(2, 1, 28, 28))
    assert out.logits.shape == (2, 16, 49) and out.n_targets == 16
    for name, vit in [("mae-fmnist-xs", "vit-fmnist-xs"), ("mae-fmnist-s", "vit-fmnist-s")]:
        enc = get_config(name).encoder  # the ViT preset, head-less, with sin-cos positions
        assert enc == dataclasses.replace(get_config(vit), n_classes=0, pos="sincos")
