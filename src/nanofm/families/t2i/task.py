"""Text to image, DALL-E 2 style, on captioned Fashion-MNIST scenes (`nanofm data prepare fashion-scenes`):
four tasks trained one after the other through the shared Trainer, each a run folder of its own.

  clip               CLIP: caption and image encoders, contrastive loss (nanofm pretrain configs/clip-scenes.yaml)
  diffusion-prior    CLIP text embedding + caption tokens -> CLIP image embedding, on a frozen CLIP run
  diffusion-decoder  CLIP image embedding -> image (DiT, DDPM), on the same frozen CLIP run
  scene-verifier     the independent judge: item and colour per position (never shares weights with the rest)

Images are scaled to [-1, 1]. A training scene gets one of its captions at random each time it is drawn
(Spanish or English, any phrasing; torch's RNG, so resumed runs draw the same); evaluation scenes have
a fixed caption. The frozen CLIP's image embeddings are computed once when a prior or decoder run starts.

Legend: B batch, T caption tokens, E CLIP embedding width.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from nanofm.config import require
from nanofm.data.collate import pad_sequences
from nanofm.data.scenes import SceneSet, content_key, load_scenes
from nanofm.engine import TrainConfig, collate_generator
from nanofm.engine.task import TaskParts
from nanofm.families.t2i.clip import CLIP, CLIPConfig
from nanofm.families.t2i.dit import DiffusionDecoder, DiTConfig
from nanofm.families.t2i.prior import DiffusionPrior, PriorConfig
from nanofm.families.t2i.verifier import SceneVerifier, VerifierConfig
from nanofm.progress import progress_bar
from nanofm.registry import get_config
from nanofm.runs import load_trained
from nanofm.text.wordpiece import WordPieceTokenizer
from nanofm.viz.samples import plot_image_rows


@dataclass
class SceneDataConfig:
    dir: str = "data/fashion-scenes"  # `nanofm data prepare fashion-scenes` (images, captions, tokenizer.json)
    langs: list[str] = field(default_factory=lambda: ["es", "en"])  # caption languages drawn in training
    train_size: int = 0  # > 0: only the first N training scenes (quick runs)
    eval_size: int = 2000  # validation scenes scored while training (0: all)

    def __post_init__(self):
        require(bool(self.langs) and not set(self.langs) - {"es", "en"},
                f"langs must be a non-empty list of 'es' and 'en', got {self.langs}", "langs")


def _train(**kw) -> TrainConfig:
    return TrainConfig(**{"batch_size": 128, "lr": 1e-3, "warmup_steps": 100, "weight_decay": 0.05, "log_every": 20, **kw})


@dataclass
class CLIPTaskConfig:
    task: Literal["clip"] = "clip"  # which task this config is for
    model: CLIPConfig = field(default_factory=lambda: get_config("clip-scenes"))  # text.vocab_size and max_len: from the tokenizer
    data: SceneDataConfig = field(default_factory=SceneDataConfig)
    train: TrainConfig = field(default_factory=lambda: _train(steps=2000, batch_size=256, lr=1e-3, eval_every=500,
                                                              save_every=500, best_metric="eval/retrieval_top1", best_mode="max"))


@dataclass
class PriorTaskConfig:
    task: Literal["diffusion-prior"] = "diffusion-prior"  # which task this config is for
    clip: str = "runs/clip-scenes"  # the CLIP run (frozen) whose embeddings the prior maps
    model: PriorConfig = field(default_factory=lambda: get_config("prior-scenes"))  # embed_dim, text_dim, max_text_len: from the CLIP run
    data: SceneDataConfig = field(default_factory=SceneDataConfig)
    sample_steps: int = 32  # DDIM steps of the prior when scored in evaluation
    train: TrainConfig = field(default_factory=lambda: _train(steps=2000, batch_size=256, lr=5e-4, eval_every=500,
                                                              save_every=500, best_metric=None))


@dataclass
class DecoderTaskConfig:
    task: Literal["diffusion-decoder"] = "diffusion-decoder"  # which task this config is for
    clip: str = "runs/clip-scenes"  # the CLIP run (frozen) whose image embeddings condition the decoder
    model: DiTConfig = field(default_factory=lambda: get_config("dit-scenes"))  # cond_dim and image size: from the CLIP run and the data
    data: SceneDataConfig = field(default_factory=SceneDataConfig)
    train: TrainConfig = field(default_factory=lambda: _train(steps=4000, batch_size=128, lr=5e-4, weight_decay=0.0,
                                                              eval_every=1000, save_every=500, best_metric=None))


@dataclass
class VerifierTaskConfig:
    task: Literal["scene-verifier"] = "scene-verifier"  # which task this config is for
    model: VerifierConfig = field(default_factory=lambda: get_config("verifier-scenes"))  # a small CNN
    data: SceneDataConfig = field(default_factory=SceneDataConfig)
    noise_std: float = 0.05  # training images get Gaussian noise of this std (robust to imperfect generations)
    train: TrainConfig = field(default_factory=lambda: _train(steps=2000, lr=2e-3, eval_every=500, save_every=500,
                                                              best_metric="eval/exact", best_mode="max"))


# ---------------------------------------------------------------- data


def to_model_range(images: Tensor) -> Tensor:
    """uint8 (B, C, H, W) -> float in [-1, 1]."""
    return images.float() / 127.5 - 1


def from_model_range(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((x.float() + 1) / 2).clamp(0, 1)


class SceneExamples(Sequence):
    """Scenes as examples {"index", "image", "items", "colours", "caption"}; `caption` is None when drawn at
    collate time (training), else a fixed caption alternating Spanish and English, phrasings in turn."""

    def __init__(self, scenes: SceneSet, fixed: bool, langs: Sequence[str] = ("es", "en")):
        self.scenes, self.fixed, self.langs = scenes, fixed, list(langs)

    def __len__(self) -> int:
        return len(self.scenes)

    def caption(self, i: int) -> str:
        caps = self.scenes.captions[i][self.langs[i % len(self.langs)]]
        return caps[(i // len(self.langs)) % len(caps)]

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.scenes
        return {"index": i, "image": s.images[i], "items": s.items[i], "colours": s.colours[i],
                "caption": self.caption(i) if self.fixed else None, "captions": s.captions[i]}


def draw_caption(captions: dict[str, list[str]], langs: Sequence[str]) -> str:
    g = collate_generator()  # seeded per micro-batch by the Trainer; None (the global RNG) elsewhere
    lang = langs[int(torch.randint(len(langs), (), generator=g))]
    return captions[lang][int(torch.randint(len(captions[lang]), (), generator=g))]


class CaptionEncoder:
    """Captions -> (tokens (B, T), padding_mask (B, T)); lowercased, [CLS] ... [SEP], right-padded."""

    def __init__(self, tokenizer: WordPieceTokenizer, max_len: int):
        self.tok, self.max_len = tokenizer, max_len

    def __call__(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        ids = [self.tok.encode(t.lower().strip(), max_length=self.max_len).ids for t in texts]
        tokens = pad_sequences([torch.tensor(x, dtype=torch.long) for x in ids], self.tok.pad_id)  # (B, T)
        return tokens, tokens == self.tok.pad_id


def _load_data(cfg: SceneDataConfig) -> tuple[SceneSet, SceneSet, WordPieceTokenizer]:
    train, val = load_scenes(cfg.dir, "train"), load_scenes(cfg.dir, "val")
    if cfg.train_size:
        train = train.subset(range(min(cfg.train_size, len(train))))
    if cfg.eval_size and cfg.eval_size < len(val):  # an even spread of one- and two-item scenes
        val = val.subset(torch.linspace(0, len(val) - 1, cfg.eval_size).round().long())
    return train, val, WordPieceTokenizer.load(Path(cfg.dir) / "tokenizer.json")


def _captions(examples: list[dict[str, Any]], langs: Sequence[str]) -> list[str]:
    return [ex["caption"] if ex["caption"] is not None else draw_caption(ex["captions"], langs) for ex in examples]


# ---------------------------------------------------------------- CLIP


@torch.no_grad()
def clip_retrieval(clip: CLIP, images: Tensor, tokens: Tensor, pad: Tensor, keys: Tensor, block: int = 100,
                   batch: int = 500) -> float:
    """Top-1 caption retrieval among `block` candidates: scenes are cut into blocks of `block`, each image
    is scored against the captions of its block; right when the best caption's content is the image's own
    (another scene of exactly the same content is as right). Images in [-1, 1]."""
    clip.eval()
    dev = next(clip.parameters()).device
    img = torch.cat([clip.encode_image(images[i : i + batch].to(dev)) for i in range(0, len(images), batch)])
    txt = torch.cat([clip.encode_text(tokens[i : i + batch].to(dev), pad[i : i + batch].to(dev))
                     for i in range(0, len(tokens), batch)])
    right, n = 0, 0
    for s in range(0, len(img) - block + 1, block):
        best = (img[s : s + block] @ txt[s : s + block].t()).argmax(1).cpu()
        right += int((keys[s : s + block][best] == keys[s : s + block]).sum())
        n += block
    return right / max(n, 1)


def build_clip(cfg: CLIPTaskConfig) -> TaskParts:
    train, val, tok = _load_data(cfg.data)
    cfg = replace(cfg, model=replace(cfg.model, text=replace(cfg.model.text, vocab_size=tok.vocab_size, pad_id=tok.pad_id)))
    torch.manual_seed(cfg.train.seed)
    model = CLIP(cfg.model)
    encode = CaptionEncoder(tok, cfg.model.text.max_len)
    langs = cfg.data.langs

    def collate(examples: list[dict[str, Any]]) -> dict[str, Tensor]:
        tokens, pad = encode(_captions(examples, langs))
        items, colours = torch.stack([e["items"] for e in examples]), torch.stack([e["colours"] for e in examples])
        return {"images": to_model_range(torch.stack([e["image"] for e in examples])), "tokens": tokens,
                "padding_mask": pad, "groups": content_key(items, colours)}

    eval_data = SceneExamples(val, fixed=True)

    def metrics(model, data) -> dict[str, float]:
        batch = collate([data[i] for i in range(len(data))])
        return {"retrieval_top1": clip_retrieval(model, batch["images"], batch["tokens"], batch["padding_mask"], batch["groups"])}

    return TaskParts(
        model=model, train_data=SceneExamples(train, fixed=False, langs=langs), eval_data=eval_data, collate=collate,
        compute_metrics=metrics,
        report=lambda model, data, m: f"caption retrieval top-1 among 100 (val): {m.get('eval/retrieval_top1', float('nan')):.4f}",
        describe=f"CLIP on {Path(cfg.data.dir).name}: {len(train)} train scenes, {len(eval_data)} val; captions in {'+'.join(langs)}",
        files={"tokenizer.json": Path(cfg.data.dir) / "tokenizer.json"}, config=cfg,
    )


def load_clip(run_dir: str | Path, checkpoint: str = "best") -> tuple[CLIPTaskConfig, CLIP, CaptionEncoder]:
    cfg, model = load_trained(run_dir, "clip", "a CLIP", CLIP, checkpoint)
    tok = WordPieceTokenizer.load(Path(run_dir) / "tokenizer.json")
    return cfg, model.eval().requires_grad_(False), CaptionEncoder(tok, cfg.model.text.max_len)


@torch.no_grad()
def image_embeddings(clip: CLIP, images: Tensor, batch: int = 500, desc: str = "") -> Tensor:
    """uint8 scenes (N, C, H, W) -> CLIP image embeddings (N, E), in batches, on CLIP's device."""
    dev = next(clip.parameters()).device
    chunks = range(0, len(images), batch)
    return torch.cat([clip.encode_image(to_model_range(images[i : i + batch]).to(dev)).cpu()
                      for i in progress_bar(chunks, desc=desc or "CLIP image embeddings", unit="batch", leave=False,
                                           enabled=len(chunks) >= 4)])


# ---------------------------------------------------------------- prior


class TextConditioner:
    """Captions -> what the prior reads from the frozen CLIP: text_emb (B, E), text_tokens (B, T, Dt), text_pad (B, T)."""

    def __init__(self, clip: CLIP, encode: CaptionEncoder):
        self.clip, self.encode = clip, encode

    @torch.no_grad()
    def __call__(self, captions: Sequence[str]) -> dict[str, Tensor]:
        tokens, pad = self.encode(captions)
        dev = next(self.clip.parameters()).device
        feats, emb = self.clip.text_features(tokens.to(dev), pad.to(dev))
        return {"text_emb": emb, "text_tokens": feats, "text_pad": pad.to(dev)}


def build_prior(cfg: PriorTaskConfig) -> TaskParts:
    train, val, _ = _load_data(cfg.data)
    clip_cfg, clip, encode = load_clip(cfg.clip)
    cfg = replace(cfg, model=replace(cfg.model, embed_dim=clip_cfg.model.embed_dim, text_dim=clip_cfg.model.text.d_model,
                                     max_text_len=clip_cfg.model.text.max_len))
    embs = {"train": image_embeddings(clip, train.images), "val": image_embeddings(clip, val.images)}
    torch.manual_seed(cfg.train.seed)
    model = DiffusionPrior(cfg.model)
    condition, langs = TextConditioner(clip, encode), cfg.data.langs

    def collate_for(split: str):
        def collate(examples: list[dict[str, Any]]) -> dict[str, Tensor]:
            return {"image_emb": embs[split][[e["index"] for e in examples]], **condition(_captions(examples, langs))}
        return collate

    train_collate, val_collate = collate_for("train"), collate_for("val")
    eval_data = SceneExamples(val, fixed=True)

    def collate(examples):  # one collate for both: evaluation examples carry their fixed caption
        return (val_collate if examples[0]["caption"] is not None else train_collate)(examples)

    @torch.no_grad()
    def metrics(model, data) -> dict[str, float]:
        idx = list(range(min(len(data), 500)))
        batch = val_collate([data[i] for i in idx])
        z = model.sample(batch["text_emb"], batch["text_tokens"], batch["text_pad"], steps=cfg.sample_steps,
                         generator=torch.Generator(batch["text_emb"].device).manual_seed(0))
        target = batch["image_emb"].to(z.device)
        return {"cos_image": float((z * target).sum(-1).mean()),  # the prior's sample against the caption's true image
                "cos_text_baseline": float((batch["text_emb"] * target).sum(-1).mean())}  # the text embedding itself

    return TaskParts(
        model=model, train_data=SceneExamples(train, fixed=False, langs=langs), eval_data=eval_data, collate=collate,
        compute_metrics=metrics,
        report=lambda model, data, m: (f"prior sample vs true image embedding, cosine {m.get('eval/cos_image', float('nan')):.4f} "
                                       f"(the text embedding itself: {m.get('eval/cos_text_baseline', float('nan')):.4f})"),
        describe=f"diffusion prior on CLIP run {cfg.clip}: {len(train)} train scenes, {len(eval_data)} val", config=cfg,
    )


# ---------------------------------------------------------------- decoder


def build_decoder(cfg: DecoderTaskConfig) -> TaskParts:
    train, val, _ = _load_data(cfg.data)
    clip_cfg, clip, _ = load_clip(cfg.clip)
    c, h, w = train.images.shape[1:]
    cfg = replace(cfg, model=replace(cfg.model, cond_dim=clip_cfg.model.embed_dim, image_size=h, in_channels=c))
    embs = {"train": image_embeddings(clip, train.images), "val": image_embeddings(clip, val.images)}
    torch.manual_seed(cfg.train.seed)
    model = DiffusionDecoder(cfg.model)

    def collate(examples: list[dict[str, Any]]) -> dict[str, Tensor]:
        split = "val" if examples[0]["caption"] is not None else "train"
        return {"images": to_model_range(torch.stack([e["image"] for e in examples])),
                "cond": embs[split][[e["index"] for e in examples]]}

    eval_data = SceneExamples(val, fixed=True)

    def pictures(model, run_dir: Path) -> list[Path]:
        idx = list(range(0, len(eval_data), max(1, len(eval_data) // 8)))[:8]
        dev = next(model.parameters()).device
        gen = model.sample(embs["val"][idx].to(dev), steps=50, guidance=3.0, generator=torch.Generator(dev).manual_seed(0))
        real = to_model_range(val.images[idx])
        return [plot_image_rows([from_model_range(real), from_model_range(gen.cpu())], ["real", "decoded"],
                                [eval_data.caption(i) for i in idx], run_dir / "reconstructions.png",
                                title="decoder: images from the CLIP embeddings of real scenes (DDIM 50, guidance 3)")]

    return TaskParts(
        model=model, train_data=SceneExamples(train, fixed=False), eval_data=eval_data, collate=collate, pictures=pictures,
        report=lambda model, data, m: f"held-out diffusion loss {m.get('eval/loss', float('nan')):.4f}",
        describe=f"diffusion decoder (DiT) on CLIP run {cfg.clip}: {len(train)} train scenes, {len(eval_data)} val",
        config=cfg,
    )


# ---------------------------------------------------------------- verifier


@torch.no_grad()
def verify(verifier: SceneVerifier, images: Tensor, items: Tensor, colours: Tensor, batch: int = 500) -> dict[str, Tensor]:
    """images in [-1, 1] (N, C, H, W) against the ground truth (N, S) -> per scene booleans: "exact" (every
    slot's item and colour right, empty slots included), "items", "colours"."""
    verifier.eval()
    dev = next(verifier.parameters()).device
    preds = [verifier.predict(images[i : i + batch].to(dev)) for i in range(0, len(images), batch)]
    p_items, p_colours = torch.cat([p[0].cpu() for p in preds]), torch.cat([p[1].cpu() for p in preds])
    ok_items, ok_colours = (p_items == items).all(1), (p_colours == colours).all(1)
    return {"exact": ok_items & ok_colours, "items": ok_items, "colours": ok_colours}


def build_verifier(cfg: VerifierTaskConfig) -> TaskParts:
    train, val, _ = _load_data(cfg.data)
    c, h, _ = train.images.shape[1:]
    cfg = replace(cfg, model=replace(cfg.model, image_size=h, in_channels=c))
    torch.manual_seed(cfg.train.seed)
    model = SceneVerifier(cfg.model)

    def collate(examples: list[dict[str, Any]]) -> dict[str, Tensor]:
        x = to_model_range(torch.stack([e["image"] for e in examples]))
        if examples[0]["caption"] is None and cfg.noise_std > 0:  # training
            x = x + cfg.noise_std * torch.randn_like(x)
        return {"images": x, "items": torch.stack([e["items"] for e in examples]),
                "colours": torch.stack([e["colours"] for e in examples])}

    def metrics(model, data) -> dict[str, float]:
        ok = verify(model, to_model_range(data.scenes.images), data.scenes.items, data.scenes.colours)
        return {k: float(v.float().mean()) for k, v in ok.items()}

    def report(model, data, m) -> str:
        test = load_scenes(cfg.data.dir, "test")
        ok = verify(model, to_model_range(test.images), test.items, test.colours)
        one = test.items[:, 0] >= 0
        return (f"verifier on real test scenes: every attribute right {float(ok['exact'].float().mean()):.4f} "
                f"(one item {float(ok['exact'][one].float().mean()):.4f}, two items {float(ok['exact'][~one].float().mean()):.4f})")

    return TaskParts(
        model=model, train_data=SceneExamples(train, fixed=False), eval_data=SceneExamples(val, fixed=True),
        collate=collate, compute_metrics=metrics, report=report,
        describe=f"scene verifier (item and colour per position) on {Path(cfg.data.dir).name}: {len(train)} train scenes",
        config=cfg,
    )
