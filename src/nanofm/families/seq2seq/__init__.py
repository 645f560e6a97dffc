"""Sequence to sequence: the Transformer encoder-decoder and the RNN with attention (the lecture's baseline),
their decoding, and their tasks (copy, translation). Importing it registers the families, presets and tasks."""

from nanofm.families.seq2seq import copy, translation
from nanofm.families.seq2seq.decoding import beam_search, greedy_search
from nanofm.families.seq2seq.rnn import Seq2SeqRNN, Seq2SeqRNNConfig
from nanofm.families.seq2seq.transformer import EncoderDecoder, EncoderDecoderConfig
from nanofm.registry import register_family, register_preset, register_task

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

register_task("copy", copy.CopyTaskConfig, copy.build)
register_task("translate-rnn", translation.TranslateRNNConfig, translation.build)
register_task("translate-transformer", translation.TranslateTransformerConfig, translation.build)

__all__ = [
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "Seq2SeqRNN",
    "Seq2SeqRNNConfig",
    "beam_search",
    "greedy_search",
]

