"""BERT: the encoder, its heads, whole-word masking, pretraining (mlm), fine-tuning (finetune), the Hugging Face
adapter and the predictors (FillMask, TextClassifier, TokenTagger). Importing it registers them."""

from nanofm.families.bert import finetune, hf, pretrain
from nanofm.families.bert.model import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    load_pretrained_encoder,
)
from nanofm.registry import register_adapter, register_family, register_preset, register_task

# `create("bert-mini")` builds the pretraining model (BertForMaskedLM); the fine-tuning models take the
# same config: BertForSequenceClassification(get_config("bert-mini", n_labels=5)).
register_family("bert", BertConfig, BertForMaskedLM)
register_preset(
    "bert-tiny-debug",
    "bert",
    BertConfig(vocab_size=128, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=64, dropout=0.0, attn_dropout=0.0),
    "debug: 2 layers, width 32, 4 heads (tests)",
)
for _name, _layers, _width in [("tiny", 2, 128), ("mini", 4, 256), ("small", 4, 512), ("medium", 8, 512), ("base", 12, 768)]:
    register_preset(
        f"bert-{_name}",
        "bert",
        BertConfig(d_model=_width, n_layers=_layers, n_heads=_width // 64, d_ff=4 * _width),
        f"{'BERT-base' if _name == 'base' else 'Google BERT miniature'}: {_layers} layers, width {_width}, "
        f"{_width // 64} heads, feed-forward {4 * _width}",
    )

register_task("mlm", pretrain.MLMTaskConfig, pretrain.build)
register_task("finetune", finetune.FinetuneTaskConfig, finetune.build)
register_adapter("bert", hf.from_hf, hf.to_hf, tuple(hf.CLASSES.values()), "BERT")

__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "load_pretrained_encoder",
]

