"""Captioned scenes made from real Fashion-MNIST items: the text-to-image data of nanofm (DALL-E 2 style).

Every scene is a 32x32 RGB image on black, in one of two layouts:
  one item   the 28x28 item at the centre (2-pixel margin)          slot 0 (centre)
  two items  each item shrunk to 16x16, side by side, rows 8-23     slot 1 (left), slot 2 (right)
One image size for every model (64 patches of 4x4). Each item is tinted one of six colours (its grey
level times the colour's RGB). The ground truth per slot (item class, colour, source image; -1 when the
slot is empty) is saved beside the images, and the captions are written from it, in Spanish and English,
with several phrasings each:
  "un bolso rojo", "una foto de un bolso rojo", "un bolso de color rojo", "hay un bolso rojo"
  "un bolso rojo a la izquierda de una camiseta azul" / "a red bag to the left of a blue t-shirt", ...

Splits (deterministic: seeded torch.Generator, inputs in IDX order):
  train    from the Fashion-MNIST training images minus the validation ones (the same stratified 5,000
           as `nanofm data prepare fashion-mnist`): every item once alone, plus `pairs` two-item scenes
  val      from the 5,000 validation images (one-item scenes, plus a few pairs)
  test     from the 10,000 test images: seen item-colour combinations only
  heldout  from the test images: scenes holding a held-out item-colour pair, one that no train, val or
           test scene ever shows (item c in colour c mod 6: a red t-shirt, green trousers, a blue
           pullover, ...); every item keeps five colours and every colour keeps eight items in training

    prepare_scenes("data/fashion-scenes")
    s = load_scenes("data/fashion-scenes", "test")   # SceneSet: images uint8 (N, 3, 32, 32), items, colours, captions

Legend: N scenes, S = 3 slots (centre, left, right).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from nanofm.data.fashion_mnist import CLASSES, DEBIAN_SOURCE, IDX_FILES, _idx_path, stratified_split
from nanofm.errors import DataError
from nanofm.text.wordpiece import train_wordpiece
from nanofm.vision.io import load_idx

IMAGE_SIZE = 32
SLOTS = ("centre", "left", "right")
# (English, Spanish noun, Spanish gender) in Fashion-MNIST class order
ITEMS = [("t-shirt", "camiseta", "f"), ("trousers", "pantalón", "m"), ("pullover", "jersey", "m"), ("dress", "vestido", "m"),
         ("coat", "abrigo", "m"), ("sandal", "sandalia", "f"), ("shirt", "camisa", "f"), ("sneaker", "zapatilla", "f"),
         ("bag", "bolso", "m"), ("ankle boot", "botín", "m")]
# (English, Spanish masculine, Spanish feminine, RGB)
COLOURS = [("red", "rojo", "roja", (1.0, 0.15, 0.1)), ("green", "verde", "verde", (0.15, 0.85, 0.2)),
           ("blue", "azul", "azul", (0.2, 0.4, 1.0)), ("yellow", "amarillo", "amarilla", (1.0, 0.9, 0.1)),
           ("purple", "morado", "morada", (0.7, 0.25, 1.0)), ("white", "blanco", "blanca", (1.0, 1.0, 1.0))]
HELDOUT = [(c, c % len(COLOURS)) for c in range(len(ITEMS))]  # (item, colour) pairs never in train/val/test


@dataclass
class SceneSet:
    images: Tensor  # uint8 (N, 3, H, W)
    items: Tensor  # int64 (N, S): item class per slot, -1 when empty
    colours: Tensor  # int64 (N, S): colour per slot, -1 when empty
    captions: list[dict[str, list[str]]]  # per scene {"es": [...], "en": [...]}

    def __len__(self) -> int:
        return self.images.size(0)

    def subset(self, idx: Tensor | list[int]) -> "SceneSet":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return SceneSet(self.images[idx], self.items[idx], self.colours[idx], [self.captions[i] for i in idx.tolist()])


# ---------------------------------------------------------------- captions


def _en_np(item: int, colour: int | None) -> str:
    noun, col = ITEMS[item][0], "" if colour is None else COLOURS[colour][0] + " "
    if item == 1:  # trousers: "a pair of red trousers"
        return f"a pair of {col}trousers"
    art = "an" if (col or noun)[0] in "aeiou" else "a"
    return f"{art} {col}{noun}"


def _es_np(item: int, colour: int | None) -> str:
    _, noun, gender = ITEMS[item]
    art = "una" if gender == "f" else "un"
    if colour is None:
        return f"{art} {noun}"
    return f"{art} {noun} {COLOURS[colour][2 if gender == 'f' else 1]}"


def scene_captions(items: list[int], colours: list[int]) -> dict[str, list[str]]:
    """The captions of a scene from its ground truth per slot (centre, left, right; -1 = empty)."""
    if items[0] >= 0:
        i, c = items[0], colours[0]
        es_noun = f"{'una' if ITEMS[i][2] == 'f' else 'un'} {ITEMS[i][1]}"
        en_in = _en_np(i, None)
        return {
            "es": [_es_np(i, c), f"una foto de {_es_np(i, c)}", f"{es_noun} de color {COLOURS[c][1]}", f"hay {_es_np(i, c)}"],
            "en": [_en_np(i, c), f"a photo of {_en_np(i, c)}", f"{en_in} in {COLOURS[c][0]}", f"there is {_en_np(i, c)}"],
        }
    (li, ri), (lc, rc) = items[1:], colours[1:]
    les, res_, len_, ren = _es_np(li, lc), _es_np(ri, rc), _en_np(li, lc), _en_np(ri, rc)
    return {
        "es": [f"{les} a la izquierda de {res_}", f"{res_} a la derecha de {les}", f"a la izquierda {les} y a la derecha {res_}"],
        "en": [f"{len_} to the left of {ren}", f"{ren} to the right of {len_}", f"on the left {len_}, on the right {ren}"],
    }


def zero_shot_prompts(lang: str) -> list[str]:
    """One prompt per Fashion-MNIST class: "una foto de un bolso" / "a photo of a bag"."""
    return [f"una foto de {_es_np(i, None)}" if lang == "es" else f"a photo of {_en_np(i, None)}" for i in range(len(ITEMS))]


def _mention_pattern() -> re.Pattern:
    nouns = sorted({n for it in ITEMS for n in (it[0], it[1])}, key=len, reverse=True)
    cols = sorted({c for col in COLOURS for c in col[:3]}, key=len, reverse=True)
    n, c = "|".join(map(re.escape, nouns)), "|".join(map(re.escape, cols))
    # "camiseta roja", "camiseta de color rojo", "red t-shirt", "pair of red trousers", "t-shirt in red"
    return re.compile(rf"\b(?:(?P<c1>{c}) (?:(?P<n1>{n})|pair of (?P<n2>trousers))|(?P<n3>{n})(?: de color| in)? (?P<c2>{c}))\b")


_MENTION = _mention_pattern()
_NOUN = {name: i for i, it in enumerate(ITEMS) for name in it[:2]}
_COLOUR = {name: i for i, col in enumerate(COLOURS) for name in col[:3]}


def parse_caption(text: str) -> tuple[list[int], list[int]] | None:
    """The ground truth a caption asks for, (items, colours) per slot as in the data, or None when it does
    not name one or two coloured items in one of the known phrasings. Reads any of scene_captions' forms."""
    text = text.lower().strip()
    found = []
    for m in _MENTION.finditer(text):
        noun = m.group("n1") or m.group("n2") or m.group("n3")
        found.append((_NOUN[noun], _COLOUR[m.group("c1") or m.group("c2")], m.start()))
    items, colours = [-1, -1, -1], [-1, -1, -1]
    if len(found) == 1:
        items[0], colours[0] = found[0][:2]
        return items, colours
    if len(found) != 2:
        return None
    (a_i, a_c, _), (b_i, b_c, b_at) = found
    between = text[:b_at]
    if re.search(r"\ba la derecha de\b|\bto the right of\b", between):
        (a_i, a_c), (b_i, b_c) = (b_i, b_c), (a_i, a_c)  # the first one named is on the right
    elif not re.search(r"\bizquierda\b|\bleft\b", text):
        return None
    items[1:], colours[1:] = [a_i, b_i], [a_c, b_c]
    return items, colours


def content_key(items: Tensor, colours: Tensor) -> Tensor:
    """(N, S) ground truth -> (N,) int64, equal exactly for scenes of the same content."""
    code = (items + 1) * (len(COLOURS) + 1) + (colours + 1)  # (N, S) in [0, 11 * 7)
    base = (len(ITEMS) + 1) * (len(COLOURS) + 1)
    return (code * torch.tensor([base**s for s in range(code.size(1))], device=code.device)).sum(1)


# ---------------------------------------------------------------- composition


def tint(grey: Tensor, colours: Tensor) -> Tensor:
    """grey uint8 (N, 1, h, w) or float in [0, 1], colours (N,) -> float (N, 3, h, w) in [0, 1]."""
    g = grey.float() / 255 if grey.dtype == torch.uint8 else grey.float()
    rgb = torch.tensor([c[3] for c in COLOURS], dtype=torch.float32)[colours]  # (N, 3)
    return g * rgb[:, :, None, None]


def compose_one(grey: Tensor, colours: Tensor) -> Tensor:
    """grey uint8 (N, 1, 28, 28) -> scenes uint8 (N, 3, 32, 32), the tinted item at the centre."""
    out = torch.zeros(grey.size(0), 3, IMAGE_SIZE, IMAGE_SIZE)
    out[:, :, 2:30, 2:30] = tint(grey, colours)
    return (out * 255).round().clamp(0, 255).to(torch.uint8)


def compose_two(left: Tensor, right: Tensor, left_colours: Tensor, right_colours: Tensor) -> Tensor:
    """Two items per scene, each shrunk to 16x16 (antialiased), left and right, rows 8-23."""
    out = torch.zeros(left.size(0), 3, IMAGE_SIZE, IMAGE_SIZE)
    for grey, cols, x in ((left, left_colours, 0), (right, right_colours, 16)):
        small = F.interpolate(grey.float() / 255, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
        out[:, :, 8:24, x : x + 16] = tint(small.clamp(0, 1), cols)
    return (out * 255).round().clamp(0, 255).to(torch.uint8)


def _allowed_colours(items: Tensor, heldout: bool, g: torch.Generator) -> Tensor:
    """A colour per item: uniform among the seen colours of its class, or its held-out colour."""
    held = torch.tensor([c for _, c in HELDOUT])[items]
    if heldout:
        return held
    shift = torch.randint(1, len(COLOURS), (items.size(0),), generator=g)  # any colour but the held-out one
    return (held + shift) % len(COLOURS)


def _one_item(grey: Tensor, labels: Tensor, src: Tensor, colours: Tensor) -> dict[str, Tensor]:
    n = labels.size(0)
    empty = torch.full((n, 2), -1, dtype=torch.long)
    return {"images": compose_one(grey, colours), "items": torch.cat([labels[:, None], empty], 1),
            "colours": torch.cat([colours[:, None], empty], 1), "sources": torch.cat([src[:, None], empty], 1)}


def _two_items(grey: Tensor, labels: Tensor, src: Tensor, n: int, g: torch.Generator, heldout: bool) -> dict[str, Tensor]:
    """n scenes of two distinct random items; heldout: exactly one of the two in its held-out colour."""
    a, b = torch.randint(0, len(labels), (2, n), generator=g)
    col_a = _allowed_colours(labels[a], False, g)
    col_b = _allowed_colours(labels[b], heldout, g)
    if heldout:  # the held-out item on a random side
        swap = torch.rand(n, generator=g) < 0.5
        a, b = torch.where(swap, b, a), torch.where(swap, a, b)
        col_a, col_b = torch.where(swap, col_b, col_a), torch.where(swap, col_a, col_b)
    empty = torch.full((n, 1), -1, dtype=torch.long)
    return {"images": compose_two(grey[a], grey[b], col_a, col_b),
            "items": torch.cat([empty, labels[a, None], labels[b, None]], 1),
            "colours": torch.cat([empty, col_a[:, None], col_b[:, None]], 1),
            "sources": torch.cat([empty, src[a, None], src[b, None]], 1)}


def _cat(parts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def prepare_scenes(out: str | Path = "data/fashion-scenes", source: str | Path | None = None, pairs: int = 20000,
                   seed: int = 0, limit: int | None = None, vocab_size: int = 512) -> dict:
    """Write out/{train,val,test,heldout}.safetensors (+ .captions.jsonl), the caption tokenizer and meta.json.
    `limit`: use only the first `limit` images of each Fashion-MNIST split (tests, quick looks)."""
    source, out = Path(source or DEBIAN_SOURCE), Path(out)
    paths = {s: [_idx_path(source, name) for name in names] for s, names in IDX_FILES.items()}
    if any(p is None for ps in paths.values() for p in ps):
        raise FileNotFoundError(f"Fashion-MNIST not found in {source}; install it with "
                                f"`sudo apt-get install dataset-fashion-mnist` or pass --source FOLDER")
    full, test = load_idx(*paths["train"], classes=CLASSES), load_idx(*paths["test"], classes=CLASSES)
    full_n = len(full.labels) if limit is None else min(limit, len(full.labels))
    test_n = len(test.labels) if limit is None else min(limit, len(test.labels))
    val_size = 5000 if limit is None else max(10, full_n // 12)
    val_idx, train_idx = stratified_split(full.labels[:full_n], val_size, seed)
    scale = 1.0 if limit is None else full_n / len(full.labels)
    g = torch.Generator().manual_seed(seed)
    splits: dict[str, dict[str, Tensor]] = {}
    for name, (imgs, idx, n_pairs) in {
        "train": (full, train_idx, int(pairs * scale)), "val": (full, val_idx, int(pairs * scale) // 20),
    }.items():
        grey, labels = imgs.images[idx], imgs.labels[idx]
        splits[name] = _cat([_one_item(grey, labels, idx, _allowed_colours(labels, False, g)),
                             _two_items(grey, labels, idx, max(n_pairs, 2), g, False)])
    t_idx = torch.arange(test_n)
    grey, labels = test.images[:test_n], test.labels[:test_n]
    splits["test"] = _cat([_one_item(grey, labels, t_idx, _allowed_colours(labels, False, g)),
                           _two_items(grey, labels, t_idx, max(test_n // 5, 2), g, False)])
    held = torch.randperm(test_n, generator=g)[: max(test_n // 5, 10)].sort().values  # 2,000 one-item scenes
    splits["heldout"] = _cat([_one_item(grey[held], labels[held], held, _allowed_colours(labels[held], True, g)),
                              _two_items(grey, labels, t_idx, max(test_n // 10, 2), g, True)])

    out.mkdir(parents=True, exist_ok=True)
    for name, s in splits.items():
        save_file({k: v.contiguous() for k, v in s.items()}, str(out / f"{name}.safetensors"))
        with open(out / f"{name}.captions.jsonl", "w", encoding="utf-8") as f:
            for items, colours in zip(s["items"].tolist(), s["colours"].tolist()):
                f.write(json.dumps(scene_captions(items, colours), ensure_ascii=False) + "\n")
    texts = out / ".captions-for-tokenizer.txt"  # every phrasing of every train scene, lowercased
    with open(texts, "w", encoding="utf-8") as f:
        for line in open(out / "train.captions.jsonl", encoding="utf-8"):
            caps = json.loads(line)
            f.write("\n".join(caps["es"] + caps["en"]) + "\n")
        f.write("\n".join(zero_shot_prompts("es") + zero_shot_prompts("en")) + "\n")
    train_wordpiece([texts], vocab_size=vocab_size, min_frequency=1).save(out)
    texts.unlink()
    meta = {
        "dataset": "fashion-scenes",
        "image_size": IMAGE_SIZE,
        "slots": list(SLOTS),
        "items": [{"en": e, "es": s, "gender": gdr} for e, s, gdr in ITEMS],
        "colours": [{"en": e, "es": m, "es_f": f_, "rgb": list(rgb)} for e, m, f_, rgb in COLOURS],
        "heldout": [{"item": i, "colour": c, "en": _en_np(i, c), "es": _es_np(i, c)} for i, c in HELDOUT],
        "sizes": {name: {"scenes": len(s["items"]), "one_item": int((s["items"][:, 0] >= 0).sum()),
                         "two_items": int((s["items"][:, 0] < 0).sum())} for name, s in splits.items()},
        "pairs": pairs, "seed": seed, "limit": limit, "source": str(source.resolve()),
    }
    tmp = out / f".meta.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, out / "meta.json")  # written last: its presence means the folder is complete
    return meta


def load_scenes(folder: str | Path, split: str) -> SceneSet:
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"{folder}: no prepared scenes (run `nanofm data prepare fashion-scenes --out {folder}`)")
    path = folder / f"{split}.safetensors"
    if not path.is_file():
        raise DataError(f"{folder}: no split '{split}'")
    with safe_open(str(path), framework="pt") as f:
        t = {k: f.get_tensor(k) for k in ("images", "items", "colours")}
    with open(folder / f"{split}.captions.jsonl", encoding="utf-8") as f:
        captions = [json.loads(line) for line in f]
    if len(captions) != len(t["items"]):
        raise DataError(f"{folder}: {split} has {len(t['items'])} scenes but {len(captions)} caption lines")
    return SceneSet(t["images"], t["items"], t["colours"], captions)
