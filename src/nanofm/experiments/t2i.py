"""Measuring the text-to-image pipeline (nanofm.families.t2i.pipeline): `benchmark_t2i` measures honestly
whether the pictures match their captions.

The benchmark scores generated images with the separately trained verifier (item and colour at every
position, empty positions included): caption fidelity is the share of images whose every attribute
matches the caption's ground truth, on test captions of seen item-colour combinations and on held-out
combinations, beside the verifier's own accuracy on the real scenes of those captions and the chance of a
random guess. It also scores CLIP (top-1 caption retrieval among 100, zero-shot Fashion-MNIST with
"una foto de un bolso" / "a photo of a bag") and the decoder on the text embedding without the prior.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch

from nanofm.data.fashion_mnist import DEBIAN_SOURCE, load_split
from nanofm.data.scenes import COLOURS, ITEMS, SceneSet, compose_one, content_key, load_scenes, zero_shot_prompts
from nanofm.families.t2i.pipeline import TextToImage, load_verifier
from nanofm.families.t2i.task import SceneExamples, clip_retrieval, to_model_range, verify
from nanofm.families.t2i.verifier import SceneVerifier
from nanofm.progress import progress_bar, write
from nanofm.viz.samples import plot_image_rows


def _pick(scenes: SceneSet, n: int, one_item: bool) -> SceneSet:
    """n scenes of one layout, spread evenly over the split (which is in Fashion-MNIST order, so mixed)."""
    idx = torch.nonzero((scenes.items[:, 0] >= 0) == one_item).flatten()
    if len(idx) > n:
        idx = idx[torch.linspace(0, len(idx) - 1, n).round().long()]
    return scenes.subset(idx)


def random_baseline(one_item: bool) -> float:
    """The chance that a uniformly random guess of every mentioned attribute is right (positions given)."""
    p = 1 / (len(ITEMS) * len(COLOURS))
    return p if one_item else p * p


def fidelity(t2i: TextToImage, verifier: SceneVerifier, scenes: SceneSet, use_prior: bool, steps: int, guidance: float,
             seed: int, progress: bool) -> dict[str, float]:
    """Generate one image per scene caption (fixed captions, alternating Spanish and English); the share of
    generated images the verifier finds right in every attribute, and in items / colours alone."""
    ex = SceneExamples(scenes, fixed=True)
    captions = [ex.caption(i) for i in range(len(ex))]
    images = t2i(captions, steps=steps, guidance=guidance, use_prior=use_prior, seed=seed, progress=progress)
    ok = verify(verifier, images * 2 - 1, scenes.items, scenes.colours)
    return {k: float(v.float().mean()) for k, v in ok.items()}


def verifier_accuracy(verifier: SceneVerifier, scenes: SceneSet) -> float:
    return float(verify(verifier, to_model_range(scenes.images), scenes.items, scenes.colours)["exact"].float().mean())


@torch.no_grad()
def zero_shot_fmnist(t2i: TextToImage, fmnist: str | Path, langs: Sequence[str] = ("es", "en"),
                     n: int = 10000) -> dict[str, float]:
    """CLIP's zero-shot accuracy on real Fashion-MNIST test images (untinted, centred as one-item scenes),
    each image against one prompt per class ("una foto de un bolso" / "a photo of a bag"), per language.
    The images are embedded once for every language."""
    test = load_split(fmnist, "test")
    images, labels = test.images[:n], test.labels[:n]
    scenes = compose_one(images, torch.full((len(labels),), [c[0] for c in COLOURS].index("white")))
    clip = t2i.pipeline.clip
    image = torch.cat([clip.encode_image(to_model_range(scenes[i : i + 500])) for i in range(0, len(scenes), 500)])
    accuracy = {}
    for lang in langs:
        text = clip.encode_text(*t2i.encode(zero_shot_prompts(lang)))  # (10, E)
        accuracy[lang] = float(((image @ text.t()).argmax(1) == labels).float().mean())
    return accuracy


def benchmark_t2i(run_dir: str | Path, verifier_dir: str | Path, n: int = 200, steps: int = 50, guidance: float = 3.0,
                  seed: int = 0, fmnist: str | Path = "data/fashion-mnist", out: str | Path | None = None,
                  progress: bool = True, quick: bool = False) -> dict:
    """Every figure of the text-to-image table; written to out/table.md and out/table.json when out is given.
    quick: the one-item, seen-combinations fidelity and CLIP's figures only (no held-out, two-item or ablation rows)."""
    torch.manual_seed(seed)
    t2i = TextToImage.load(run_dir)
    verifier = load_verifier(verifier_dir)
    data = t2i.data_dir
    test, held = load_scenes(data, "test"), load_scenes(data, "heldout")
    if not Path(fmnist).exists() and Path(DEBIAN_SOURCE).is_dir():
        fmnist = DEBIAN_SOURCE
    rows, t0 = [], time.time()

    def row(name: str, value: float, note: str = "") -> None:
        rows.append({"measure": name, "value": value, "note": note})
        if progress:
            write(f"  {name}: {value:.4f} {note}".rstrip())

    sets = {"one item, seen combinations": _pick(test, n, True), "one item, held-out combinations": _pick(held, n, True),
            "two items, seen combinations": _pick(test, n // 2, False)}
    if quick:
        sets = {"one item, seen combinations": sets["one item, seen combinations"]}
    ablations = () if quick else ("one item, seen combinations", "one item, held-out combinations")
    bar = progress_bar(total=sum(len(s) for s in sets.values()) + sum(len(sets[a]) for a in ablations),
                       desc="benchmark t2i: sampling", unit="image", enabled=progress)
    for name, scenes in sets.items():
        one = "one item" in name
        f = fidelity(t2i, verifier, scenes, True, steps, guidance, seed, progress)
        bar.update(len(scenes))
        v = verifier_accuracy(verifier, scenes)
        row(f"caption fidelity, {name}", f["exact"], f"(items {f['items']:.3f}, colours {f['colours']:.3f}; "
            f"{len(scenes)} captions; relative to the verifier {f['exact'] / max(v, 1e-9):.3f})")
        row(f"verifier on the real scenes of those captions ({name})", v)
        row(f"random baseline ({name})", random_baseline(one))
    for name in ablations:
        f = fidelity(t2i, verifier, sets[name], False, steps, guidance, seed, progress)
        bar.update(len(sets[name]))
        row(f"ablation: decoder on the text embedding, no prior ({name})", f["exact"],
            f"(items {f['items']:.3f}, colours {f['colours']:.3f})")
    bar.close()
    ex = SceneExamples(test, fixed=True)
    tokens, pad = t2i.encode([ex.caption(i) for i in range(len(ex))])
    retrieval = clip_retrieval(t2i.pipeline.clip, to_model_range(test.images), tokens, pad,
                               content_key(test.items, test.colours))
    row("CLIP top-1 caption retrieval among 100 (test scenes)", retrieval, f"(chance about 0.01; {len(test) // 100 * 100} scenes)")
    for lang, accuracy in zero_shot_fmnist(t2i, fmnist).items():
        row(f"CLIP zero-shot Fashion-MNIST ({lang}: \"{zero_shot_prompts(lang)[8]}\")", accuracy, "(chance 0.10)")
    result = {"rows": rows, "run": str(run_dir), "verifier": str(verifier_dir), "steps": steps, "guidance": guidance,
              "seed": seed, "n": n, "seconds": round(time.time() - t0, 1)}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        (out / "table.md").write_text(format_t2i_table(result))
    return result


def format_t2i_table(result: dict) -> str:
    lines = [f"Text to image (DDIM {result['steps']} steps, guidance {result['guidance']:g}, seed {result['seed']})", "",
             "| measure | value | note |", "|---|---:|---|"]
    lines += [f"| {r['measure']} | {100 * r['value']:.2f}% | {r['note']} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def caption_grid(t2i: TextToImage, scenes: SceneSet, path: str | Path, n: int = 10, seeds: int = 2, steps: int = 50,
                 guidance: float = 3.0) -> tuple[Path, list[str]]:
    """Images for n captions of `scenes` (half one item, half two; Spanish and English in turn), one row per
    seed, above the real scene each caption was written for. The PNG's path and the captions."""
    one, two = _pick(scenes, n - n // 2, True), _pick(scenes, n // 2, False)
    caps = one.captions + two.captions
    captions = [c["es" if i % 2 == 0 else "en"][0] for i, c in enumerate(caps)]
    rows = [t2i(captions, steps=steps, guidance=guidance, seed=s) for s in range(seeds)]
    rows.append(torch.cat([one.images, two.images]).float() / 255)
    names = [f"seed {s}" for s in range(seeds)] + ["real scene"]
    title = f"generated (DDIM {steps} steps, guidance {guidance:g}) above a real scene of each caption"
    return plot_image_rows(rows, names, captions, path, title=title), captions
