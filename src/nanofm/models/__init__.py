"""Model families, composed from the shared core; importing this registers their presets."""

from nanofm.registry import register_family, register_preset

from .decoding import beam_search, greedy_search
from .encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from .output import IGNORE_INDEX, ModelOutput
from .seq2seq_rnn import Seq2SeqRNN, Seq2SeqRNNConfig

register_family("encoder-decoder", EncoderDecoderConfig, EncoderDecoder)
register_preset(
    "transformer-tiny",
    "encoder-decoder",
    EncoderDecoderConfig(vocab_size=32, d_model=64, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=256, dropout=0.0, max_len=64),
    "debug: 2+2 layers, width 64, 4 heads (tests, the copy task)",
)
register_preset(
    "transformer-small",
    "encoder-decoder",
    EncoderDecoderConfig(vocab_size=8000, d_model=256, n_heads=4, n_encoder_layers=3, n_decoder_layers=3, d_ff=1024, label_smoothing=0.1),
    "laptop: 3+3 layers, width 256, 4 heads",
)
register_preset(
    "transformer-base",
    "encoder-decoder",
    EncoderDecoderConfig(vocab_size=37000, label_smoothing=0.1),
    "the paper's base model: 6+6 layers, width 512, 8 heads, feed-forward 2048",
)

register_family("seq2seq-rnn", Seq2SeqRNNConfig, Seq2SeqRNN)
register_preset(
    "rnn-tiny",
    "seq2seq-rnn",
    Seq2SeqRNNConfig(vocab_size=32, d_embed=32, d_hidden=64, d_attn=32, dropout=0.0, max_len=64),
    "debug: GRU 64 with additive attention (tests)",
)
register_preset(
    "rnn-small",
    "seq2seq-rnn",
    Seq2SeqRNNConfig(vocab_size=8000, d_embed=256, d_hidden=256, d_attn=256, dropout=0.1),
    "laptop: bidirectional GRU 256, additive attention",
)
register_preset(
    "rnn-base",
    "seq2seq-rnn",
    Seq2SeqRNNConfig(vocab_size=30000, d_embed=620, d_hidden=1000, d_attn=1000, dropout=0.1),
    "Bahdanau et al. 2015 (RNNsearch): embeddings 620, GRU 1000",
)

__all__ = [
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "IGNORE_INDEX",
    "ModelOutput",
    "Seq2SeqRNN",
    "Seq2SeqRNNConfig",
    "beam_search",
    "greedy_search",
]

from .bert import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    load_pretrained_encoder,
)

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

__all__ += [
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "load_pretrained_encoder",
]
