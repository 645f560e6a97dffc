"""ViT: nanofm's ViT <-> Hugging Face's ViTModel (no head, n_classes=0) and ViTForImageClassification,
weights (as Hugging Face saves them) and config.json.

Hugging Face's ViT has learned positions, a [CLS] token and exact GELU; a nanofm ViT pooling the mean of
its patches is refused. A nanofm ViT with fixed 2-D sin-cos positions is exported with that table written
as the learned one (its own row / column order, so outputs stay equal); read back, it is a learned table of
the same values. Drop path trains only and is not exported. ViTModel's pooler (which no classifier uses) is
dropped on reading; exported without one, transformers initialises it (last_hidden_state is unaffected).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from nanofm.errors import DataError
from nanofm.families.bert.hf import labels_from_hf, labels_to_hf
from nanofm.families.vit.vit import ViT, ViTConfig
from nanofm.interop.mapping import Converted, Plan, Rename, export_to_hf, load_from_hf

HF_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
               "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
               "initializer_range": 0.02, "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16,
               "num_channels": 3, "qkv_bias": True}  # transformers' ViTConfig defaults
BACKBONE = [  # ViTModel, nanofm -> Hugging Face
    Rename("cls_token", "embeddings.cls_token"),  # (1, 1, D)
    Rename("pos_embed.weight", "embeddings.position_embeddings", batch_dim=True),  # (1+N, D) here, (1, 1+N, D) there
    Rename("patch_embed.proj", "embeddings.patch_embeddings.projection"),  # Conv2d (D, C, P, P)
    Rename("encoder.layers.{i}.self_attn_norm", "encoder.layer.{i}.layernorm_before"),  # pre-norm
    Rename("encoder.layers.{i}.self_attn.qkv_proj", "encoder.layer.{i}.attention.attention.{qkv}"),  # (3D, D)
    Rename("encoder.layers.{i}.self_attn.out_proj", "encoder.layer.{i}.attention.output.dense"),
    Rename("encoder.layers.{i}.ff_norm", "encoder.layer.{i}.layernorm_after"),
    Rename("encoder.layers.{i}.ff.fc1", "encoder.layer.{i}.intermediate.dense"),  # (F, D)
    Rename("encoder.layers.{i}.ff.fc2", "encoder.layer.{i}.output.dense"),  # (D, F)
    Rename("encoder.final_norm", "layernorm"),
]
CLASSES = ("ViTModel", "ViTForImageClassification")


def plan(target: str) -> Plan:
    prefix = "" if target == "ViTModel" else "vit."
    renames = [Rename(r.ours, prefix + r.theirs, r.batch_dim) for r in BACKBONE]
    if target == "ViTForImageClassification":
        renames.append(Rename("head", "classifier"))  # (K, D)
    return Plan(renames, {r"(vit\.)?pooler\.dense\.(weight|bias)": "ViTModel's pooler; nanofm pools [CLS] without one",
                          r"(vit\.)?embeddings\.mask_token": "the masked-image-modelling token; nanofm's ViT has none"})


def _side(c: Mapping[str, Any], key: str) -> int:
    """image_size / patch_size: an int, or [h, w] that must be square."""
    v = c[key]
    if isinstance(v, (list, tuple)):
        if len(set(v)) != 1:
            raise DataError(f"{key} {list(v)}: nanofm's ViT takes square images and patches")
        v = v[0]
    return int(v)


def config_from_hf(c: Mapping[str, Any], n_classes: int) -> ViTConfig:
    """config.json -> ViTConfig with a head of n_classes (0: none); a ValueError names what nanofm cannot represent."""
    c = {**HF_DEFAULTS, **{k: v for k, v in c.items() if v is not None}}
    if c.get("model_type", "vit") != "vit":
        raise DataError(f"model_type {c['model_type']!r} is not ViT")
    if c["hidden_act"] != "gelu":
        raise DataError(f"hidden_act {c['hidden_act']!r}: nanofm's ViT uses exact GELU")
    if not c["qkv_bias"]:
        raise DataError("qkv_bias is false: nanofm's attention projections have biases")
    return ViTConfig(
        image_size=_side(c, "image_size"), patch_size=_side(c, "patch_size"), in_channels=c["num_channels"],
        d_model=c["hidden_size"], n_layers=c["num_hidden_layers"], n_heads=c["num_attention_heads"],
        d_ff=c["intermediate_size"], n_classes=n_classes, pool="cls", pos="learned", dropout=c["hidden_dropout_prob"],
        attn_dropout=c["attention_probs_dropout_prob"], norm_eps=c["layer_norm_eps"], init_std=c["initializer_range"],
    )  # fmt: skip


def config_to_hf(model: ViT, labels: list[str] | None = None) -> dict[str, Any]:
    cfg = model.cfg
    if cfg.pool != "cls":
        raise DataError(f"pool={cfg.pool!r}: Hugging Face's ViT classifies from [CLS]; export a ViT with pool='cls'")
    out = {
        "architectures": [_arch(model)], "model_type": "vit", "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "intermediate_size": cfg.d_ff, "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.attn_dropout,
        "initializer_range": cfg.init_std, "layer_norm_eps": cfg.norm_eps, "image_size": cfg.image_size,
        "patch_size": cfg.patch_size, "num_channels": cfg.in_channels, "qkv_bias": True,
    }  # fmt: skip
    if cfg.n_classes:
        out |= labels_to_hf(labels, cfg.n_classes)
    return out


def from_hf(c: Mapping[str, Any], weights: Mapping[str, Tensor], target: str | None = None) -> Converted:
    """config.json and Hugging Face weights -> a nanofm ViT holding them. `target`: "ViTModel" (no head) or
    "ViTForImageClassification"; default: the weights' own class."""
    archs = c.get("architectures") or ["ViTForImageClassification" if "classifier.weight" in weights else "ViTModel"]
    target = target or archs[0]
    if target not in CLASSES:
        raise DataError(f"{archs[0]}: nanofm reads {list(CLASSES)}")
    labels = (labels_from_hf(c) or ["LABEL_0", "LABEL_1"]) if target != "ViTModel" else None
    p = plan(target)
    if target == "ViTModel" and any(k.startswith("vit.") for k in weights):  # the backbone of a classifier
        weights = {k.removeprefix("vit."): v for k, v in weights.items()}
        p.drop[r"classifier\.(weight|bias)"] = f"the head of {archs[0]}; only the backbone was asked for"
    model = ViT(config_from_hf(c, len(labels) if labels else 0))
    return Converted(model, archs[0], labels, load_from_hf(model, weights, p, target))


def to_hf(model: ViT, labels: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A nanofm ViT -> (config.json as a dict, Hugging Face weights); sin-cos positions go out as the table."""
    extra = {"pos_embed.weight": model.pos_embed.weight} if model.cfg.pos == "sincos" else {}
    return config_to_hf(model, labels), export_to_hf(model, plan(_arch(model)), _arch(model), extra)


def _arch(model: ViT) -> str:
    return "ViTForImageClassification" if model.cfg.n_classes else "ViTModel"
