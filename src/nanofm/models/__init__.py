"""Model families, composed from the shared core; importing this registers their presets."""

from nanofm.registry import register_family, register_preset

from .encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from .output import IGNORE_INDEX, ModelOutput

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

__all__ = ["EncoderDecoder", "EncoderDecoderConfig", "IGNORE_INDEX", "ModelOutput"]
