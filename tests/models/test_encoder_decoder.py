import torch

from nanofm.models import IGNORE_INDEX
from nanofm.registry import create
from nanofm.tasks.copy import CopyTaskConfig, evaluate, is_held_out, make_batch, train_copy
from tests.helpers import max_diff


def _batch(n=8, seed=0):
    return make_batch(CopyTaskConfig(), n, torch.Generator().manual_seed(seed))


def test_batch_layout():
    b = _batch()
    src, tgt, targets = b["src"], b["tgt"], b["targets"]
    assert (tgt[:, 0] == 1).all()  # BOS
    real = targets != IGNORE_INDEX
    assert torch.equal(tgt[:, 1:][real[:, 1:]], targets[:, :-1][real[:, 1:]])  # tgt is targets shifted right
    assert torch.equal(src.masked_fill(~real, 0), targets.masked_fill(~real, 0))  # the target is the source


def test_padding_in_the_batch_does_not_change_logits():
    model = create("transformer-tiny").eval()
    b = _batch(4)
    full = model(**b).logits
    for i in range(4):
        n_src = int((b["src"][i] != 0).sum())
        n_tgt = int((b["targets"][i] != IGNORE_INDEX).sum())
        alone = model(b["src"][i : i + 1, :n_src], b["tgt"][i : i + 1, :n_tgt]).logits
        assert max_diff(alone[0], full[i, :n_tgt]) <= 1e-4


def test_generate_with_cache_equals_without():
    model = create("transformer-tiny").eval()
    src = _batch(6)["src"]
    with_cache = model.generate(src, max_new_tokens=15)
    without = model.generate(src, max_new_tokens=15, use_cache=False)
    assert torch.equal(with_cache, without)


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = create("transformer-tiny")
    b = _batch(16)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = model(**b).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.02 * first
    assert evaluate(model, b)[1] == 1.0  # every training sequence copied exactly


def test_every_parameter_gets_a_gradient():
    model = create("transformer-tiny", share_embeddings=False, tie_output=False)
    model(**_batch()).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_learns_to_copy_held_out_sequences():
    result = train_copy(CopyTaskConfig(steps=400), progress=False)
    assert result.token_accuracy == 1.0, result
    assert all(src == out for src, out in result.samples)


def test_held_out_split_is_disjoint_from_training():
    cfg, gen = CopyTaskConfig(), torch.Generator().manual_seed(0)
    train = make_batch(cfg, 300, gen)["src"].tolist()
    held = make_batch(cfg, 100, gen, held_out=True)["src"].tolist()
    assert not {tuple(s) for s in train} & {tuple(s) for s in held}
    assert 0.05 < sum(is_held_out(torch.randint(3, 32, (8,))) for _ in range(2000)) / 2000 < 0.2
