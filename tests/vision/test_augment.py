import torch

from nanofm.vision import AugmentConfig, augment, normalize, random_flip, random_resized_crop, random_translate


def _batch(b=6, c=3, h=8, w=10):
    return torch.rand(b, c, h, w)


def test_shapes_dtypes_and_seeding():
    x = _batch()
    cfg = AugmentConfig(crop_scale=(0.35, 1.0), flip=True, translate=2)
    out = augment(x, cfg, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype and not torch.equal(out, x)
    assert torch.equal(out, augment(x, cfg, torch.Generator().manual_seed(1)))  # same seed, same batch
    assert torch.equal(augment(x, AugmentConfig(crop_scale=None, flip=False)), x)


def test_flip():
    x = _batch(b=64)
    always = random_flip(x, p=1.0)
    assert torch.equal(always, x.flip(-1)) and torch.equal(random_flip(x, p=0.0), x)
    some = random_flip(x, 0.5, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(s, f) for s, f in zip(some, x.flip(-1))])
    kept = torch.tensor([torch.equal(s, o) for s, o in zip(some, x)])
    assert torch.all(flipped ^ kept) and 10 < int(flipped.sum()) < 54  # each image either flipped or kept


def test_translate():
    x = _batch()
    assert torch.equal(random_translate(x, 0), x)
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for o, i in zip(out, x):  # each image is x shifted by some (dy, dx) in [-2, 2], zeros where nothing came in
        shifted = [torch.roll(i, (dy, dx), (1, 2)) for dy in range(-2, 3) for dx in range(-2, 3)]
        assert any(torch.equal(o[o != 0], s[o != 0]) for s in shifted)


def test_crop_identity_and_range():
    x = _batch(h=9, w=9)
    same = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-5)
    small = random_resized_crop(x, scale=(0.1, 0.2), generator=torch.Generator().manual_seed(0))
    assert small.shape == x.shape and small.min() >= x.min() - 1e-6 and small.max() <= x.max() + 1e-6
    # a crop of a constant-per-column ramp keeps the ramp increasing (no flip, no rotation)
    ramp = torch.arange(9.0).expand(4, 1, 9, 9).contiguous()
    cropped = random_resized_crop(ramp, scale=(0.3, 0.6), generator=torch.Generator().manual_seed(0))
    assert torch.all(cropped.diff(dim=-1) >= -1e-5)


def test_normalize():
    images = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(2, 2, 1, 2)
    out = normalize(images, mean=[0.5, 0.0], std=[0.5, 1.0])
    assert out.dtype == torch.float32 and out[0, 0, 0].tolist() == [-1.0, 1.0] and out[0, 1, 0].tolist() == [0.0, 1.0]
