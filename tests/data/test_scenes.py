"""Captioned Fashion-MNIST scenes: captions from the ground truth, held-out pairs, determinism."""

import hashlib

import torch

from nanofm.data.scenes import (HELDOUT, compose_one, compose_two, content_key, load_scenes, parse_caption,
                                prepare_scenes, scene_captions, zero_shot_prompts)
from tests.vision.fakes import write_fake_fashion_mnist


def test_captions_name_the_ground_truth():
    caps = scene_captions([8, -1, -1], [0, -1, -1])
    assert caps["es"][0] == "un bolso rojo" and caps["en"][0] == "a red bag"
    assert "una foto de un bolso rojo" in caps["es"] and "a photo of a red bag" in caps["en"]
    assert scene_captions([0, -1, -1], [3, -1, -1])["es"][0] == "una camiseta amarilla"  # gender agreement
    assert scene_captions([9, -1, -1], [2, -1, -1])["en"][0] == "a blue ankle boot"
    two = scene_captions([-1, 8, 0], [-1, 0, 2])
    assert two["es"][0] == "un bolso rojo a la izquierda de una camiseta azul"
    assert two["en"][0] == "a red bag to the left of a blue t-shirt"
    assert two["en"][1] == "a blue t-shirt to the right of a red bag"
    assert zero_shot_prompts("es")[8] == "una foto de un bolso" and zero_shot_prompts("en")[9] == "a photo of an ankle boot"


def test_every_phrasing_parses_back_to_its_ground_truth():
    for item in range(10):
        for colour in range(6):
            truth = ([item, -1, -1], [colour, -1, -1])
            for lang, caps in scene_captions(*truth).items():
                assert all(parse_caption(c) == truth for c in caps), (lang, caps)
            for other in (0, 5, 9):
                pair = ([-1, item, other], [-1, colour, (colour + 1) % 6])
                for caps in scene_captions(*pair).values():
                    assert all(parse_caption(c) == pair for c in caps), caps
    assert parse_caption("Un vestido rojo") == ([3, -1, -1], [0, -1, -1])
    assert parse_caption("un perro") is None


def test_composition_tints_and_places_items():
    grey = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    one = compose_one(grey, torch.tensor([0, 5]))
    assert one.shape == (2, 3, 32, 32) and one[:, :, :2].sum() == 0  # black margin
    assert one[0, :, 10, 10].tolist() == [255, 38, 26] and one[1, :, 10, 10].tolist() == [255, 255, 255]
    two = compose_two(grey, grey, torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert two[:, :, :8].sum() == 0 and two[:, :, 24:].sum() == 0
    assert two[0, 2, 15, 5] < two[0, 2, 15, 20]  # red on the left, blue on the right


def test_content_keys_tell_contents_apart():
    items = torch.tensor([[8, -1, -1], [8, -1, -1], [-1, 8, 0], [-1, 0, 8]])
    colours = torch.tensor([[0, -1, -1], [1, -1, -1], [-1, 0, 2], [-1, 2, 0]])
    keys = content_key(items, colours)
    assert len(set(keys.tolist())) == 4
    assert torch.equal(content_key(items[:1], colours[:1]), keys[:1])


def test_prepare_is_deterministic_and_holds_out_pairs(tmp_path):
    source = write_fake_fashion_mnist(tmp_path / "idx", n_train=300, n_test=300)  # the package's files, random pixels
    metas = [prepare_scenes(tmp_path / name, source=source, limit=300, pairs=1000) for name in ("a", "b")]
    assert metas[0]["sizes"] == metas[1]["sizes"]
    for f in ("train.safetensors", "heldout.safetensors", "test.captions.jsonl"):
        digests = {hashlib.sha256((tmp_path / name / f).read_bytes()).hexdigest() for name in ("a", "b")}
        assert len(digests) == 1, f
    held = set(HELDOUT)
    for split in ("train", "val", "test", "heldout"):
        s = load_scenes(tmp_path / "a", split)
        pairs = {(i, c) for i, c in zip(s.items.flatten().tolist(), s.colours.flatten().tolist()) if i >= 0}
        if split == "heldout":  # every held-out scene shows at least one held-out pair
            per_scene = [any((i, c) in held for i, c in zip(it, co)) for it, co in zip(s.items.tolist(), s.colours.tolist())]
            assert all(per_scene)
        else:
            assert not pairs & held, split
        for k in range(len(s)):  # the captions written are those of the ground truth saved beside the image
            truth = (s.items[k].tolist(), s.colours[k].tolist())
            assert all(parse_caption(c) == truth for lang in ("es", "en") for c in s.captions[k][lang])
        one = s.items[:, 0] >= 0
        assert torch.all((s.items[one, 1:] == -1)) and torch.all(s.items[~one, 0] == -1)
        assert s.images.dtype == torch.uint8 and s.images.shape[1:] == (3, 32, 32)
