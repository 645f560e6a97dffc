"""BERT: nanofm's BertModel, BertForMaskedLM, BertForSequenceClassification and BertForTokenClassification
<-> the Hugging Face classes of the same names, weights (as Hugging Face saves them) and config.json.

BertForPreTraining weights (Google's and BETO's checkpoints) are read as BertForMaskedLM: its next-sentence
head and pooler are dropped, by name. Asking for "BertModel" reads the encoder (and pooler) of any BERT
folder and drops its head. Layouts nanofm cannot run are refused: relative positions, a decoder, untied
MLM output weights, regression or multi-label heads, activations it lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from nanofm.errors import DataError
from nanofm.families.bert.model import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, BertModel
from nanofm.interop.mapping import Converted, Plan, Rename, export_to_hf, load_from_hf

CLASSES: dict[str, type[nn.Module]] = {c.__name__: c for c in (BertModel, BertForMaskedLM, BertForSequenceClassification,
                                                               BertForTokenClassification)}
READ_AS = {**{name: name for name in CLASSES}, "BertForPreTraining": "BertForMaskedLM"}  # Hugging Face class -> ours
CLASSIFIERS = ("BertForSequenceClassification", "BertForTokenClassification")
ACT_FROM_HF = {"gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "relu": "relu", "silu": "silu",
               "swish": "silu", "quick_gelu": "quick_gelu"}
ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu", "silu": "silu", "quick_gelu": "quick_gelu"}
HF_DEFAULTS = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
               "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",
               "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "layer_norm_eps": 1e-12,
               "initializer_range": 0.02, "pad_token_id": 0}  # transformers' BertConfig defaults

ENCODER = [  # BertModel, nanofm -> Hugging Face
    Rename("tok_embed", "embeddings.word_embeddings"),  # (V, D)
    Rename("pos_embed", "embeddings.position_embeddings"),  # (max_len, D)
    Rename("seg_embed", "embeddings.token_type_embeddings"),  # (n_segments, D)
    Rename("embed_norm", "embeddings.LayerNorm"),
    Rename("encoder.layers.{i}.self_attn.qkv_proj", "encoder.layer.{i}.attention.self.{qkv}"),  # (3D, D) = 3 x (D, D)
    Rename("encoder.layers.{i}.self_attn.out_proj", "encoder.layer.{i}.attention.output.dense"),
    Rename("encoder.layers.{i}.self_attn_norm", "encoder.layer.{i}.attention.output.LayerNorm"),  # post-norm
    Rename("encoder.layers.{i}.ff.fc1", "encoder.layer.{i}.intermediate.dense"),  # (F, D)
    Rename("encoder.layers.{i}.ff.fc2", "encoder.layer.{i}.output.dense"),  # (D, F)
    Rename("encoder.layers.{i}.ff_norm", "encoder.layer.{i}.output.LayerNorm"),
    Rename("pooler.dense", "pooler.dense"),
]
HEADS = {
    "BertModel": [],
    "BertForMaskedLM": [Rename("mlm_head.dense", "cls.predictions.transform.dense"),
                        Rename("mlm_head.norm", "cls.predictions.transform.LayerNorm"),
                        Rename("mlm_head.decoder.bias", "cls.predictions.bias")],  # decoder.weight: the tied embeddings
    "BertForSequenceClassification": [Rename("classifier.proj", "classifier")],
    "BertForTokenClassification": [Rename("classifier.proj", "classifier")],
}
POSITION_IDS = {r"(bert\.)?embeddings\.position_ids": "a constant buffer of positions 0..max_len-1"}


def plan(target: str) -> Plan:
    """The rename table of nanofm class `target`, and what reading Hugging Face weights into it may drop."""
    prefix = "" if target == "BertModel" else "bert."
    renames = [Rename(prefix + r.ours, prefix + r.theirs) for r in ENCODER] + HEADS[target]
    p = Plan(renames, dict(POSITION_IDS))
    if target == "BertForMaskedLM":
        p.drop[r"cls\.seq_relationship\.(weight|bias)"] = "the next-sentence head; nanofm has none"
        p.drop[r"bert\.pooler\.dense\.(weight|bias)"] = "the pooler; nanofm's BertForMaskedLM has none"
        p.aliases = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                     "cls.predictions.decoder.bias": "cls.predictions.bias"}
    return p


def config_from_hf(c: Mapping[str, Any]) -> BertConfig:
    """config.json -> BertConfig; a ValueError names what nanofm cannot represent."""
    c = {**HF_DEFAULTS, **{k: v for k, v in c.items() if v is not None or k == "classifier_dropout"}}
    if c.get("model_type", "bert") != "bert":
        raise DataError(f"model_type {c['model_type']!r} is not BERT")
    if c.get("position_embedding_type", "absolute") != "absolute":
        raise DataError(f"position_embedding_type {c['position_embedding_type']!r}: nanofm's BERT has absolute positions only")
    if c.get("is_decoder") or c.get("add_cross_attention"):
        raise DataError("a BERT decoder (is_decoder / add_cross_attention): nanofm's BERT is an encoder only")
    if c["hidden_act"] not in ACT_FROM_HF:
        raise DataError(f"hidden_act {c['hidden_act']!r}: nanofm has {sorted(ACT_FROM_HF)}")
    if c.get("problem_type") not in (None, "single_label_classification"):
        raise DataError(f"problem_type {c['problem_type']!r}: nanofm's classifiers are single-label (cross-entropy)")
    return BertConfig(
        vocab_size=c["vocab_size"], d_model=c["hidden_size"], n_layers=c["num_hidden_layers"],
        n_heads=c["num_attention_heads"], d_ff=c["intermediate_size"], max_len=c["max_position_embeddings"],
        n_segments=c["type_vocab_size"], dropout=c["hidden_dropout_prob"], attn_dropout=c["attention_probs_dropout_prob"],
        classifier_dropout=c.get("classifier_dropout"), act=ACT_FROM_HF[c["hidden_act"]], norm_eps=c["layer_norm_eps"],
        init_std=c["initializer_range"], pad_id=c["pad_token_id"], n_labels=len(labels_from_hf(c) or [0, 1]),
    )  # fmt: skip


def labels_from_hf(c: Mapping[str, Any]) -> list[str] | None:
    """id2label ({"0": "neg", ...}) -> class names in id order; num_labels alone -> LABEL_i; None: neither."""
    if c.get("id2label"):
        return [c["id2label"][str(i)] for i in range(len(c["id2label"]))]
    return [f"LABEL_{i}" for i in range(c["num_labels"])] if c.get("num_labels") else None


def labels_to_hf(labels: list[str] | None, n: int) -> dict[str, Any]:
    """Class names (default LABEL_i) -> config.json's id2label and label2id, for a head of n classes."""
    labels = labels or [f"LABEL_{i}" for i in range(n)]
    if len(labels) != n:
        raise DataError(f"{len(labels)} class names for a head of {n} classes")
    return {"id2label": {str(i): name for i, name in enumerate(labels)}, "label2id": {n: i for i, n in enumerate(labels)}}


def config_to_hf(model: nn.Module, labels: list[str] | None = None) -> dict[str, Any]:
    """A nanofm BERT model -> config.json (as a dict); `labels` name the classes of a classifier."""
    cfg: BertConfig = model.cfg
    if cfg.norm_first:
        raise DataError("model.norm_first is true: Hugging Face's BERT has post-norm blocks only, so a pre-norm "
                        "nanofm BERT cannot be exported to it")
    if cfg.position_bias != "none":
        raise DataError(f"model.position_bias is {cfg.position_bias!r}: Hugging Face's BERT has learned positions "
                        "only, so this nanofm BERT cannot be exported to it")
    arch = type(model).__name__
    if cfg.pool != "cls" and arch == "BertForSequenceClassification":
        raise DataError(f"model.pool is {cfg.pool!r}: Hugging Face's BERT classifies from the [CLS] vector only, so "
                        "this nanofm classifier cannot be exported to it")
    out = {
        "architectures": [arch], "model_type": "bert", "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads, "intermediate_size": cfg.d_ff,
        "max_position_embeddings": cfg.max_len, "type_vocab_size": cfg.n_segments, "hidden_act": ACT_TO_HF[cfg.act],
        "hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.attn_dropout,
        "classifier_dropout": cfg.classifier_dropout, "layer_norm_eps": cfg.norm_eps, "initializer_range": cfg.init_std,
        "pad_token_id": cfg.pad_id, "position_embedding_type": "absolute", "tie_word_embeddings": True,
    }  # fmt: skip
    if arch in CLASSIFIERS:
        out |= labels_to_hf(labels, cfg.n_labels)
    return out


def architecture(c: Mapping[str, Any], keys: list[str]) -> str:
    """The Hugging Face class of the weights: config.json's "architectures", else guessed from the names."""
    if c.get("architectures"):
        return c["architectures"][0]
    if "cls.seq_relationship.weight" in keys:
        return "BertForPreTraining"
    if any(k.startswith("cls.predictions.") for k in keys):
        return "BertForMaskedLM"
    if "classifier.weight" in keys:
        return "BertForSequenceClassification" if "bert.pooler.dense.weight" in keys else "BertForTokenClassification"
    return "BertModel"


def from_hf(c: Mapping[str, Any], weights: Mapping[str, Tensor], target: str | None = None) -> Converted:
    """config.json and Hugging Face weights -> a nanofm BERT holding them. `target` (a nanofm class name)
    defaults to the weights' own class; "BertModel" takes the encoder of any BERT."""
    arch = architecture(c, list(weights))
    target = target or READ_AS.get(arch)
    if target not in CLASSES:
        raise DataError(f"{arch}: nanofm reads {sorted(READ_AS)} (or the encoder of any BERT: fine-tune the folder)")
    if target == "BertForMaskedLM" and c.get("tie_word_embeddings") is False:
        raise DataError("tie_word_embeddings is false: nanofm's MLM head always shares the token embeddings")
    cfg = config_from_hf(c)
    hf = {_legacy(k): v for k, v in weights.items()}
    p = plan(target)
    if target == "BertModel" and any(k.startswith("bert.") for k in hf):  # the encoder of a model with a head
        hf = {k.removeprefix("bert."): v for k, v in hf.items()}
        p.drop[r"(?!embeddings\.|encoder\.|pooler\.).*"] = f"the head of {arch}; only the encoder was asked for"
    model = BertModel(cfg, pooler="pooler.dense.weight" in hf) if target == "BertModel" else CLASSES[target](cfg)
    dropped = load_from_hf(model, hf, p, target)
    return Converted(model, arch, labels_from_hf(c) if target in CLASSIFIERS else None, dropped)


def to_hf(model: nn.Module, labels: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A nanofm BERT -> (config.json as a dict, Hugging Face weights)."""
    arch = type(model).__name__
    return config_to_hf(model, labels), export_to_hf(model, plan(arch), arch)


def _legacy(key: str) -> str:
    """LayerNorm.gamma / .beta (TensorFlow-converted checkpoints) -> .weight / .bias, as transformers reads them."""
    if "LayerNorm." in key and key.endswith((".gamma", ".beta")):
        return key.rsplit(".", 1)[0] + (".weight" if key.endswith(".gamma") else ".bias")
    return key
