"""Both translation architectures: the GRU with additive attention and the Transformer encoder-decoder."""

import pytest
import torch

from nanofm.core.output import IGNORE_INDEX
from nanofm.families import create
from nanofm.families.seq2seq.copy import CopyDataset, CopyTaskConfig, collate_for
from nanofm.families.seq2seq.decoding import beam_search, greedy_search
from tests.helpers import max_diff

PRESETS = ["rnn-tiny", "transformer-tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")


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
    """Beam search (alpha 0: raw log-probability) never returns a worse-scoring ended output than greedy, and
    on some source it finds a better one (a beam search that only ever returned greedy's output fails). An
    untrained model seldom says EOS within 12 tokens, which would leave nothing to compare: its EOS logit is
    raised step by step (its logits sharpened) until some outputs end and beam search differs from greedy."""
    torch.manual_seed(0)
    model = create(preset).eval()
    src = _batch(8)["src"]
    head = model.output if preset.startswith("rnn") else model.lm_head
    sharpen, eos_bias = (4.0 if preset.startswith("rnn") else 1.0), torch.zeros(model.cfg.vocab_size)
    head.register_forward_hook(lambda module, inputs, out: out * sharpen + eos_bias)  # teacher forcing and steps alike

    @torch.no_grad()
    def logprob(out):  # sum of log-probabilities of each output, EOS included
        tgt = torch.cat([torch.full((out.size(0), 1), 1), out[:, :-1]], 1).masked_fill(out == 0, 0)
        logp = torch.log_softmax(model(src, tgt).logits, -1).gather(-1, out.clamp(min=0)[..., None]).squeeze(-1)
        return logp.masked_fill(out == 0, 0).sum(1)

    ended = lambda o: (o == 2).any(1)  # noqa: E731
    for boost in torch.arange(0.25, 6.01, 0.25).tolist():
        eos_bias[2] = boost
        greedy = greedy_search(model, src, 12)
        if ended(greedy).sum() < 2:  # (cheap: no beam search until greedy's outputs end)
            continue
        beam = beam_search(model, src, beam_size=5, max_len=12, alpha=0.0)  # alpha 0: rank by raw log-probability
        both = ended(greedy) & ended(beam)
        gain = logprob(beam)[both] - logprob(greedy)[both]
        if both.sum() >= 2 and (gain > 1e-3).any():
            break
    assert both.sum() >= 2, "no output ended: nothing compared"
    assert (gain >= -1e-4).all(), gain
    assert (gain > 1e-3).any(), "beam search never found a better output than greedy"


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


class _TableDecoder:
    """An IncrementalDecoder whose next-token log-probabilities depend only on the previous token: every
    hypothesis' score can be written down by hand. Tokens: 0 PAD, 1 BOS, 2 EOS, 3.. words."""

    def __init__(self, rows: dict[int, dict[int, float]], vocab: int = 8):
        from types import SimpleNamespace

        self.cfg = SimpleNamespace(pad_id=0, bos_id=1, eos_id=2)
        table = torch.full((vocab, vocab), 1e-6, dtype=torch.float64)
        for prev, row in rows.items():
            for tok, p in row.items():
                table[prev, tok] = p
        self.logp = (table / table.sum(1, keepdim=True)).log()

    def start(self, src, use_cache=True):
        return None

    def step(self, state, tokens):
        return self.logp[tokens].float()

    def reorder(self, state, index, beams_only=False):
        pass


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.44, 0.6, 1.0])
def test_beam_search_ranks_by_the_gnmt_length_penalty(alpha):
    """Two hypotheses end: "EOS" (1 token, log 0.4) and "3 4 EOS" (3 tokens, log 0.35 + 2 log ~1). Ranked by
    log p / ((5 + length) / 6) ** alpha (GNMT, EOS counted), the short one wins up to alpha ~0.47 and the
    long one after. Catches: the penalty ignored or not raised to alpha, the length counted without EOS
    (the switch moves to alpha ~0.40: alpha 0.44 picks the other one), multiplying instead of dividing."""
    from nanofm.families.seq2seq.decoding import length_penalty

    for n, a in [(1, 0.6), (3, 0.6), (10, 1.0), (7, 0.0)]:
        assert length_penalty(n, a) == pytest.approx(((5 + n) / 6) ** a)
    model = _TableDecoder({1: {2: 0.4, 3: 0.35, 5: 0.25}, 3: {4: 1.0}, 4: {2: 1.0}, 5: {5: 1.0}})
    lp = model.logp
    short, long = [2], [3, 4, 2]
    s_short, s_long = float(lp[1, 2]), float(lp[1, 3] + lp[3, 4] + lp[4, 2])
    expected = short if s_short / ((5 + 1) / 6) ** alpha > s_long / ((5 + 3) / 6) ** alpha else long
    assert expected == (short if alpha < 0.47 else long)  # the hand computation, as the docstring says
    out = beam_search(model, torch.zeros(1, 3, dtype=torch.long), beam_size=2, max_len=10, alpha=alpha)
    assert out[0].tolist() == expected


@pytest.mark.parametrize("preset", PRESETS)
def test_label_smoothing_is_the_smoothed_cross_entropy(preset):
    """loss = mean over real targets of (1 - eps) * -log p(y) + eps * mean over the vocabulary of -log p(v)
    (Szegedy et al. 2016, as torch's label_smoothing). Catches: the config's label_smoothing not reaching the
    loss, a wrong eps, the smoothing averaged over padding positions too."""
    eps = 0.1
    torch.manual_seed(0)
    model = create(preset, label_smoothing=eps).eval()
    b = _batch(6)
    out = model(**b)
    logp = torch.log_softmax(out.logits.double(), -1)  # (B, T, V)
    real = b["targets"] != IGNORE_INDEX
    assert not real.all()  # padding present, so that averaging over it would show
    nll = -logp.gather(-1, b["targets"].clamp(min=0)[..., None]).squeeze(-1)
    uniform = -logp.mean(-1)
    expected = ((1 - eps) * nll + eps * uniform)[real].mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert abs(expected.item() - nll[real].mean().item()) > 1e-3  # smoothing changes the value: the check sees it
