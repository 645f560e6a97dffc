"""Every registered preset, as timm's test_models does: it builds, runs forward and backward on a tiny batch
(a loss, and a gradient for every trained parameter), and its weights saved in a checkpoint and loaded into a
fresh model give the same loss; BERT and ViT presets also go to Hugging Face tensors and back unchanged."""

import pytest
import torch

from nanofm.engine.checkpoint import load_model_weights, save_checkpoint
from nanofm.families import create, presets
from nanofm.families.vit.vit import ViT
from nanofm.interop import from_hf, to_hf

B, T = 2, 6  # batch, sequence length


def _tokens(vocab: int, n: int = T) -> torch.Tensor:
    return torch.randint(4, vocab, (B, n))


def _seq2seq(m):
    return {"src": _tokens(m.cfg.vocab_size), "tgt": _tokens(m.cfg.vocab_size), "targets": _tokens(m.cfg.vocab_size)}


def _images(c: int, size: int) -> torch.Tensor:
    return torch.randn(B, c, size, size)


BATCHES = {  # family -> a tiny batch for its forward, built from the model's own config
    "encoder-decoder": _seq2seq,
    "seq2seq-rnn": _seq2seq,
    "bert": lambda m: {"tokens": _tokens(m.cfg.vocab_size), "targets": _tokens(m.cfg.vocab_size)},
    "vit": lambda m: {"images": _images(m.cfg.in_channels, m.cfg.image_size), "targets": torch.tensor([0, 1])},
    "mae": lambda m: {"images": _images(m.encoder.cfg.in_channels, m.encoder.cfg.image_size)},
    "clip": lambda m: {"images": _images(m.cfg.image.in_channels, m.cfg.image.image_size),
                       "tokens": _tokens(m.cfg.text.vocab_size)},
    "dit": lambda m: {"images": _images(m.cfg.in_channels, m.cfg.image_size), "cond": torch.randn(B, m.cfg.cond_dim)},
    "prior": lambda m: {"image_emb": torch.randn(B, m.cfg.embed_dim), "text_emb": torch.randn(B, m.cfg.embed_dim),
                        "text_tokens": torch.randn(B, T, m.cfg.text_dim), "text_pad": torch.zeros(B, T, dtype=torch.bool)},
    "verifier": lambda m: {"images": _images(m.cfg.in_channels, m.cfg.image_size), "items": torch.zeros(B, 3, dtype=torch.long),
                           "colours": torch.zeros(B, 3, dtype=torch.long)},
}
# parameters a batch may leave without a gradient, with the reason
NO_GRAD = {
    "vit": ("cls_token",),  # only where pool="mean" (no [CLS]), absent then
}


def _loss(model, batch: dict, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)  # MAE masking, diffusion timesteps and noise, condition dropout: the same draws
    return model(**batch).loss


@pytest.mark.parametrize("preset", [p.name for p in presets()], ids=str)
def test_preset_builds_trains_and_reloads(preset, tmp_path):
    family = next(p.family for p in presets() if p.name == preset)
    torch.manual_seed(0)
    model = create(preset).train()
    batch = BATCHES[family](model)
    loss = _loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == [], missing  # the bug it catches: a layer built but never used in forward
    state = {"step": 0, "total_steps": 0, "metrics": {}, "metrics_step": None}
    save_checkpoint(tmp_path, "step-000000", model, torch.optim.SGD(model.parameters(), lr=0.0), state, "")
    fresh = create(preset).train()
    load_model_weights(fresh, tmp_path / "step-000000" / "model.safetensors")  # strict: every name and shape
    with torch.no_grad():
        assert torch.equal(_loss(fresh, batch, 1), _loss(model, batch, 1))  # the weights are the whole model
    if family in ("bert", "vit"):
        config, weights = to_hf(model)
        back = from_hf(config, weights).model
        ours = {k: v for k, v in model.state_dict().items() if k in back.state_dict()}
        assert ours and all(torch.equal(v, back.state_dict()[k]) for k, v in ours.items())
        if isinstance(model, ViT):
            assert len(ours) == len(model.state_dict())
