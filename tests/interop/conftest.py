"""Tiny random Hugging Face models (transformers is a test-only dependency; never online) and the record of
the largest differences measured, printed at the end of the run."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # folders on disk only
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402  (the dev extra)

DIFFS: dict[str, float] = {}  # test case -> largest absolute difference measured


def record(name: str, a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> float:
    """Assert a and b equal to `tol` and remember their largest difference."""
    diff = (a.float() - b.float()).abs().max().item()
    DIFFS[name] = max(diff, DIFFS.get(name, 0.0))
    assert diff <= tol, f"{name}: max difference {diff:.3g} > {tol}"
    return diff


def pytest_terminal_summary(terminalreporter):
    if DIFFS:
        terminalreporter.section("interop: largest differences against transformers (float32)")
        for name, diff in DIFFS.items():
            terminalreporter.write_line(f"{name:<60} {diff:.3g}")


@torch.no_grad()
def jitter(model: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Perturb every weight, so that biases and LayerNorms are not at their 0 / 1 init; eval mode."""
    for p in model.parameters():
        p.add_(torch.randn_like(p) * scale)
    return model.eval()


def bert_config(**overrides) -> "transformers.BertConfig":
    kw = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              max_position_embeddings=32, type_vocab_size=2, num_labels=3)
    return transformers.BertConfig(**{**kw, **overrides})


def padded_batch(vocab: int, pad_id: int = 0, lengths=(12, 7, 3), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """tokens (B, T) with right padding, segments (B, T) 0 then 1, attention mask (B, T) 1 at real tokens."""
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    tokens = torch.randint(pad_id + 1, vocab, (len(lengths), t), generator=g)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    tokens = tokens.masked_fill(~mask, pad_id)
    segments = ((torch.arange(t)[None, :] >= torch.tensor(lengths)[:, None] // 2) & mask).long()
    return tokens, segments, mask.long()
