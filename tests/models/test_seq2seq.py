"""Both translation architectures: the GRU with additive attention and the Transformer encoder-decoder."""

import pytest
import torch

from nanofm.models import IGNORE_INDEX, beam_search, greedy_search
from nanofm.registry import create
from nanofm.tasks.copy import CopyDataset, CopyTaskConfig, collate_for
from tests.helpers import max_diff

PRESETS = ["rnn-tiny", "transformer-tiny"]


def _batch(n=8, seed_offset=0):
    cfg = CopyTaskConfig()
    data = CopyDataset(cfg.data, cfg.model, 1000)
    return collate_for(cfg.model)([data[i + seed_offset] for i in range(n)])


@pytest.mark.parametrize("preset", PRESETS)
def test_beam_1_equals_greedy(preset):
    torch.manual_seed(0)
    model = create(preset).eval()
    src = _batch(6)["src"]
    assert torch.equal(beam_search(model, src, beam_size=1, max_len=20), greedy_search(model, src, 20))


@pytest.mark.parametrize("preset", PRESETS)
def test_beam_search_finds_at_least_greedys_score(preset):
    torch.manual_seed(0)
    model = create(preset).eval()
    src = _batch(4)["src"]

    def logprob(out):  # sum of log-probabilities of each output, EOS included
        tgt = torch.cat([torch.full((out.size(0), 1), 1), out[:, :-1]], 1).masked_fill(out == 0, 0)
        logp = torch.log_softmax(model(src, tgt).logits, -1).gather(-1, out.clamp(min=0)[..., None]).squeeze(-1)
        return logp.masked_fill(out == 0, 0).sum(1)

    greedy = greedy_search(model, src, 12)
    beam = beam_search(model, src, beam_size=5, max_len=12, alpha=0.0)  # alpha 0: rank by raw log-probability
    ended = lambda o: (o == 2).any(1)  # noqa: E731
    both = ended(greedy) & ended(beam)
    assert (logprob(beam)[both] >= logprob(greedy)[both] - 1e-4).all()


@pytest.mark.parametrize("preset", PRESETS)
def test_batched_beam_search_equals_one_source_at_a_time(preset):
    # finished sources leave the batch and beams reorder without touching the source side: neither may
    # change any source's result
    torch.manual_seed(0)
    model = create(preset).eval()
    src = _batch(6)["src"]
    batched = beam_search(model, src, beam_size=3, max_len=15)
    for i in range(6):
        alone = beam_search(model, src[i : i + 1, : int((src[i] != 0).sum())], beam_size=3, max_len=15)
        assert torch.equal(alone[0], batched[i, : alone.size(1)]) and not batched[i, alone.size(1) :].any()


@pytest.mark.parametrize("preset", PRESETS)
def test_padding_does_not_change_outputs(preset):
    model = create(preset).eval()
    b = _batch(4)
    full = model(**b).logits
    for i in range(4):
        n_src = int((b["src"][i] != 0).sum())
        n_tgt = int((b["targets"][i] != IGNORE_INDEX).sum())
        alone = model(b["src"][i : i + 1, :n_src], b["tgt"][i : i + 1, :n_tgt]).logits
        assert max_diff(alone[0], full[i, :n_tgt]) <= 1e-4


@pytest.mark.parametrize("preset", PRESETS)
def test_overfits_a_small_batch(preset):
    torch.manual_seed(0)
    model = create(preset)
    b = _batch(16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2 if preset.startswith("rnn") else 3e-3)
    first = None
    for _ in range(200):
        loss = model(**b).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    model.eval()
    out = greedy_search(model, b["src"], b["targets"].size(1))
    real = b["targets"] != IGNORE_INDEX
    assert torch.equal(out[:, : real.size(1)][real], b["targets"][real])


def test_rnn_every_parameter_gets_a_gradient_and_attention_is_a_distribution():
    model = create("rnn-tiny")
    b = _batch()
    model(**b).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    maps = model.eval().attention_maps(b["src"], b["tgt"])  # (1, B, 1, T, S)
    assert maps.shape == (1, 8, 1, b["tgt"].size(1), b["src"].size(1))
    assert torch.allclose(maps.sum(-1), torch.ones(()), atol=1e-5)
    assert (maps[0, :, 0].transpose(1, 2)[b["src"] == 0] == 0).all()  # no weight on source padding


def test_transformer_cross_attention_maps():
    model = create("transformer-tiny").eval()
    b = _batch(2)
    maps = model.attention_maps(b["src"], b["tgt"])  # (L, B, H, T, S)
    assert maps.shape == (2, 2, 4, b["tgt"].size(1), b["src"].size(1))
    assert torch.allclose(maps.sum(-1), torch.ones(()), atol=1e-5)
