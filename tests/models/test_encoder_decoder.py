import torch

from nanofm.core.output import IGNORE_INDEX
from nanofm.engine import Trainer
from nanofm.families import create
from nanofm.families.seq2seq.copy import CopyDataset, CopyTaskConfig, build, collate_for, copy_accuracy, is_held_out


def _batch(n=8, held_out=False):
    cfg = CopyTaskConfig()
    data = CopyDataset(cfg.data, cfg.model, 1000, held_out=held_out)
    return collate_for(cfg.model)([data[i] for i in range(n)])


def test_batch_layout():
    b = _batch()
    src, tgt, targets = b["src"], b["tgt"], b["targets"]
    assert (tgt[:, 0] == 1).all()  # BOS
    real = targets != IGNORE_INDEX
    assert torch.equal(tgt[:, 1:][real[:, 1:]], targets[:, :-1][real[:, 1:]])  # tgt is targets shifted right
    assert torch.equal(src.masked_fill(~real, 0), targets.masked_fill(~real, 0))  # the target is the source


def test_tied_embeddings_keep_their_init():
    # the tied output projection (a Linear) must not overwrite the embedding init with Xavier's smaller one
    model = create("transformer-tiny", vocab_size=4000, d_model=64, share_embeddings=True, tie_output=True)
    table = model.tgt_embed.weight
    assert model.lm_head.weight is table and model.src_embed is model.tgt_embed
    assert abs(table.std().item() - 64**-0.5) < 0.01
    assert torch.equal(table[0], torch.zeros(64))  # padding row


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
        out = model(**b)
        first = first if first is not None else out.loss.item()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.n_targets == (b["targets"] != IGNORE_INDEX).sum()
    assert out.loss.item() < 0.02 * first
    examples = [dict(zip(b, values)) for values in zip(*b.values())]
    data = [{k: v[v != (IGNORE_INDEX if k == "targets" else 0)] for k, v in ex.items()} for ex in examples]
    assert copy_accuracy(model, data)["sequence_accuracy"] == 1.0  # every training sequence copied exactly


def test_every_parameter_gets_a_gradient():
    model = create("transformer-tiny", share_embeddings=False, tie_output=False)
    model(**_batch()).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_held_out_split_is_disjoint_from_training():
    train = {tuple(s) for s in _batch(300)["src"].tolist()}
    held = {tuple(s) for s in _batch(100, held_out=True)["src"].tolist()}
    assert not train & held
    assert 0.05 < sum(is_held_out(torch.randint(3, 32, (8,))) for _ in range(2000)) / 2000 < 0.2


def test_learns_to_copy_held_out_sequences():
    cfg = CopyTaskConfig()
    parts = build(cfg)
    trainer = Trainer(parts.model, parts.train_data, cfg.train, eval_data=parts.eval_data, collate=parts.collate,
                      compute_metrics=parts.compute_metrics, progress=False)
    metrics = trainer.fit()
    assert trainer.step == 400
    # learned, not bit-exact: the thread count and the optimizer kernel move the last few tokens
    assert metrics["eval/token_accuracy"] >= 0.999 and metrics["eval/sequence_accuracy"] >= 0.99, metrics
