import json

import pytest
import torch

from nanofm.core.output import IGNORE_INDEX
from nanofm.families import create, get_config, presets
from nanofm.families.bert.hf import from_hf
from nanofm.families.bert.model import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, load_pretrained_encoder
from tests.helpers import max_diff

V, D, L, H, F, C = 100, 32, 2, 4, 64, 3  # vocabulary, width, layers, heads, feed-forward, classes
CFG = BertConfig(vocab_size=V, d_model=D, n_layers=L, n_heads=H, d_ff=F, max_len=32, n_labels=C)


def _hf_model(name: str):
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.BertConfig(
        vocab_size=V, hidden_size=D, num_hidden_layers=L, num_attention_heads=H, intermediate_size=F,
        max_position_embeddings=32, num_labels=C,
    )  # fmt: skip
    model = getattr(transformers, name)(hf_cfg)
    with torch.no_grad():  # biases and LayerNorms away from their 0 / 1 init, so that every weight is checked
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _ported(cls):
    """The reference model and ours holding its weights, renamed by the family's own adapter (families/bert/hf.py:
    the tables `nanofm convert` uses, not a copy), into a model built from CFG."""
    hf = _hf_model(cls.__name__)  # the reference class has the same name
    ours = cls(CFG).eval()
    config = json.loads(hf.config.to_json_string())  # config.json as a folder holds it
    ours.load_state_dict(from_hf(config, hf.state_dict(), cls.__name__).model.state_dict(), strict=True)
    return ours, hf


def _inputs(b=3, t=12):
    tokens = torch.randint(5, V, (b, t))
    lengths = torch.tensor([t, 8, 5])[:b]
    real = torch.arange(t)[None, :] < lengths[:, None]  # (B, T)
    tokens = tokens.masked_fill(~real, 0)
    segments = ((torch.arange(t)[None, :] >= lengths[:, None] // 2) & real).long()  # sentence B: second half
    return tokens, segments, real


@torch.no_grad()
def test_masked_lm_equals_hugging_face():
    ours, hf = _ported(BertForMaskedLM)
    tokens, segments, real = _inputs()
    expected = hf(input_ids=tokens, attention_mask=real.long(), token_type_ids=segments).logits  # (B, T, V)
    got = ours(tokens, segments).logits
    assert max_diff(got[real], expected[real]) <= 1e-5
    # masked-only head: logits (N, V) at the target positions, and the same loss
    targets = tokens.masked_fill(~real | (torch.rand(tokens.shape) > 0.3), IGNORE_INDEX)
    out = ours(tokens, segments, targets=targets)
    selected = targets != IGNORE_INDEX
    assert out.logits.shape == (int(selected.sum()), V) and out.n_targets == selected.sum()
    assert max_diff(out.logits, expected[selected]) <= 1e-5
    ref_loss = hf(input_ids=tokens, attention_mask=real.long(), token_type_ids=segments, labels=targets).loss
    assert abs(out.loss.item() - ref_loss.item()) <= 1e-5


@torch.no_grad()
def test_sequence_classification_equals_hugging_face():
    ours, hf = _ported(BertForSequenceClassification)
    tokens, segments, real = _inputs()
    labels = torch.tensor([0, 2, 1])
    ref = hf(input_ids=tokens, attention_mask=real.long(), token_type_ids=segments, labels=labels)
    out = ours(tokens, segments, targets=labels)
    assert out.logits.shape == (3, C) and out.n_targets == 3
    assert max_diff(out.logits, ref.logits) <= 1e-5
    assert abs(out.loss.item() - ref.loss.item()) <= 1e-5


@torch.no_grad()
def test_token_classification_equals_hugging_face():
    ours, hf = _ported(BertForTokenClassification)
    tokens, segments, real = _inputs()
    labels = torch.randint(0, C, tokens.shape).masked_fill(~real, IGNORE_INDEX)
    labels[:, 0] = IGNORE_INDEX  # [CLS]
    ref = hf(input_ids=tokens, attention_mask=real.long(), token_type_ids=segments, labels=labels)
    out = ours(tokens, segments, targets=labels)
    assert out.logits.shape == (3, 12, C)
    assert max_diff(out.logits[real], ref.logits[real]) <= 1e-5
    assert abs(out.loss.item() - ref.loss.item()) <= 1e-5


@torch.no_grad()
def test_padding_does_not_change_real_tokens():
    model = create("bert-tiny-debug").eval()
    tokens, segments, real = _inputs()
    batched = model.bert(tokens, segments)  # (B, T, D)
    for i, n in enumerate(real.sum(1).tolist()):
        alone = model.bert(tokens[i : i + 1, :n], segments[i : i + 1, :n])
        assert max_diff(batched[i, :n], alone[0]) <= 1e-5


@torch.no_grad()
def test_masked_only_head_equals_full_head():
    model = create("bert-tiny-debug").eval()
    tokens, segments, real = _inputs()
    targets = tokens.masked_fill(~real | (torch.rand(tokens.shape) > 0.2), IGNORE_INDEX)
    full = model(tokens, segments).logits  # (B, T, V)
    masked = model(tokens, segments, targets=targets).logits  # (N, V)
    assert max_diff(masked, full[targets != IGNORE_INDEX]) <= 1e-6
    none = model(tokens, segments, targets=torch.full_like(tokens, IGNORE_INDEX))
    assert none.loss.item() == 0.0 and none.n_targets == 0  # no targets: a zero loss, not NaN


def _classification_batch(cls, n=16, t=10):
    tokens, segments = torch.randint(5, 128, (n, t)), (torch.arange(t) >= t // 2).long().expand(n, t)
    if cls is BertForTokenClassification:
        targets = torch.randint(0, 3, (n, t))
        targets[:, 0] = targets[:, -1] = IGNORE_INDEX  # [CLS] and [SEP]
        targets[:, 2] = IGNORE_INDEX  # a second sub-word
    else:
        targets = torch.randint(0, 3, (n,))
    return {"tokens": tokens, "segments": segments, "targets": targets}


@pytest.mark.parametrize("cls", [BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification])
def test_every_parameter_gets_a_gradient(cls):
    model = cls(get_config("bert-tiny-debug", n_labels=3))
    batch = _classification_batch(cls)
    if cls is BertForMaskedLM:
        batch["targets"] = batch["tokens"].masked_fill(torch.rand(batch["tokens"].shape) > 0.3, IGNORE_INDEX)
    model(**batch).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mlm_output_is_tied_and_initialised_like_bert():
    model = create("bert-tiny-debug")
    table = model.bert.tok_embed.weight
    assert model.mlm_head.decoder.weight is table
    assert torch.equal(table[0], torch.zeros(32))  # [PAD]
    assert abs(table[1:].std().item() - 0.02) < 0.003
    assert torch.equal(model.mlm_head.decoder.bias, torch.zeros(128))


def _fit(model, batch, steps, lr=3e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        out = model(**batch)
        first = first if first is not None else out.loss.item()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return first, model.eval()(**batch)


def test_masked_lm_overfits_one_batch():
    from nanofm.families.bert.masking import MLMCollator, pack_documents

    g = torch.Generator().manual_seed(0)
    docs = []
    for _ in range(12):
        words = torch.randint(5, 128, (30,), generator=g).tolist()
        docs.append((words, list(range(30))))
    blocks = pack_documents(docs, max_len=32)
    batch = MLMCollator(vocab_size=128, seed=0)(blocks)  # fixed masks: the batch can be learned by heart
    first, out = _fit(create("bert-tiny-debug"), batch, 80)
    assert first > 4.0 and out.loss.item() < 0.1 * first


@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForTokenClassification])
def test_classifiers_overfit_one_batch(cls):
    # sentence pairs (segments 0 and 1) for the sequence classifier: the pair head is the same model
    batch = _classification_batch(cls)
    first, out = _fit(cls(get_config("bert-tiny-debug", n_labels=3)), batch, 40)
    selected = batch["targets"] != IGNORE_INDEX
    accuracy = (out.logits.argmax(-1)[selected] == batch["targets"][selected]).float().mean()
    assert out.loss.item() < 0.1 * first and accuracy == 1.0


def test_fine_tuning_model_starts_from_pretrained_encoder():
    pretrained = create("bert-tiny-debug")
    cfg = get_config("bert-tiny-debug", n_labels=5)
    for cls in (BertForSequenceClassification, BertForTokenClassification):
        model = cls(cfg)
        left = load_pretrained_encoder(model, pretrained.state_dict())
        assert left == (["pooler.dense.weight", "pooler.dense.bias"] if cls is BertForSequenceClassification else [])
        for name, value in pretrained.bert.state_dict().items():
            assert torch.equal(model.bert.state_dict()[name], value), name
    model = BertForTokenClassification(cfg)
    load_pretrained_encoder(model, BertForSequenceClassification(cfg).bert.state_dict())  # a bare BertModel's, pooler dropped
    with pytest.raises(ValueError, match="missing"):
        load_pretrained_encoder(model, {k: v for k, v in pretrained.state_dict().items() if "layers.1." not in k})
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_pretrained_encoder(model, create("bert-tiny-debug", vocab_size=64).state_dict())


def test_presets_follow_bert_miniatures():
    sizes = {p.name: (p.config.n_layers, p.config.d_model) for p in presets("bert")}
    assert sizes == {
        "bert-tiny-debug": (2, 32), "bert-tiny": (2, 128), "bert-mini": (4, 256), "bert-small": (4, 512),
        "bert-medium": (8, 512), "bert-base": (12, 768),
    }  # fmt: skip
    for p in presets("bert"):
        if p.name != "bert-tiny-debug":
            assert p.config.n_heads == p.config.d_model // 64 and p.config.d_ff == 4 * p.config.d_model
    base = get_config("bert-base", vocab_size=30522)  # BERT-base's vocabulary: 110M parameters
    with torch.device("meta"):  # shapes only, no memory
        n = sum(x.numel() for x in BertForSequenceClassification(base).parameters())
    assert 109e6 < n < 110e6


@torch.no_grad()
def test_sequence_classification_fast_inference_equals_plain_path():
    """In eval mode the classifier takes the encoder's fast paths, shown by what the layers compute: every
    layer is handed the packed layout of the real tokens, the feed-forwards see only the 25 real tokens
    (not 3 x 12 padded positions), and the last layer only the 3 [CLS] rows; and the logits equal the plain
    path's. Catches: the fast flags never passed (or fast_inference ignored), a fast path that computes
    everything anyway, a fast path whose result differs."""
    model = BertForSequenceClassification(CFG).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    tokens, segments, real = _inputs()
    assert int(real.sum()) == 25
    layers = model.bert.encoder.layers
    ff_rows = []  # rows each layer's feed-forward computes: 25 packed real tokens, 3 [CLS] rows, or 3 x 12 padded
    handles = [layer.ff.register_forward_pre_hook(lambda m, a: ff_rows.append(a[0].numel() // D)) for layer in layers]
    fast = model(tokens, segments).logits
    assert ff_rows == [25] * (L - 1) + [3]
    ff_rows.clear()
    model.fast_inference = False
    plain = model(tokens, segments).logits
    assert ff_rows == [3 * 12] * L  # the plain path, really
    assert max_diff(fast, plain) <= 1e-5
    assert fast.abs().max() > 1e-3  # (not a degenerate all-zero output that would equal anything)
    model.fast_inference = True
    model.train()  # training always takes the plain path (dropout)
    ff_rows.clear()
    model(tokens, segments)
    assert ff_rows == [3 * 12] * L
    for h in handles:
        h.remove()
    full = model.eval().bert(tokens, segments)  # (B, T, D), the plain encoder
    cls = model.bert(tokens, segments, query_positions=slice(0, 1), skip_padding=True)  # (B, 1, D)
    assert cls.shape == (3, 1, D) and max_diff(cls, full[:, :1]) <= 1e-5
    packed = model.bert(tokens, segments, skip_padding=True)
    assert max_diff(packed[real], full[real]) <= 1e-5


def test_pre_norm_bert_is_wired_padding_invariant_and_not_exported():
    """model.norm_first (the demo's short-budget option) builds pre-norm blocks and a final LayerNorm."""
    from nanofm.interop import to_hf

    pre = BertForMaskedLM(BertConfig(**{**CFG.__dict__, "norm_first": True})).eval()
    post = BertForMaskedLM(CFG).eval()
    with torch.no_grad():  # residual branches as large as their inputs: at init both layouts give about LN(x)
        for w in post.parameters():
            w.add_(torch.randn_like(w) * 0.3)
    # a pre-norm block with the post-norm model's weights: the flag reaching every block changes the output
    # (a BertModel that ignored norm_first would give post's numbers), and the final norm is the extra weight
    extra = set(pre.state_dict()) - set(post.state_dict())
    assert extra == {"bert.encoder.final_norm.weight", "bert.encoder.final_norm.bias"}
    pre.load_state_dict({**post.state_dict(), **{k: pre.state_dict()[k] for k in extra}})
    tokens, segments, real = _inputs()
    h_pre, h_post = pre.bert(tokens, segments), post.bert(tokens, segments)
    assert max_diff(h_pre, h_post) > 0.1
    for i, n in enumerate(real.sum(1).tolist()):  # padding changes no real token's vector in pre-norm either
        assert max_diff(h_pre[i, :n], pre.bert(tokens[i : i + 1, :n], segments[i : i + 1, :n])[0]) <= 1e-5
    with pytest.raises(ValueError, match="norm_first is true: Hugging Face's BERT has post-norm blocks only"):
        to_hf(pre)


def test_alibi_bert_is_wired_padding_invariant_and_not_exported():
    """model.position_bias=alibi (the demo's): the distance bias changes the encoder's output with the same
    weights, padding still changes no real token, the classifier's fast inference equals its plain path, the
    state dict is BERT's (no extra weight), and export to Hugging Face is refused. Catches: the flag never
    reaching the attention, a bias that shifts with padding, a fast path that drops the bias."""
    from nanofm.interop import to_hf

    alibi_cfg = BertConfig(**{**CFG.__dict__, "position_bias": "alibi"})
    alibi, plain = BertForSequenceClassification(alibi_cfg).eval(), BertForSequenceClassification(CFG).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    assert set(alibi.state_dict()) == set(plain.state_dict())
    alibi.load_state_dict(plain.state_dict())
    tokens, segments, real = _inputs()
    with torch.no_grad():
        h = alibi.bert(tokens, segments)
        assert max_diff(h, plain.bert(tokens, segments)) > 0.05
        for i, n in enumerate(real.sum(1).tolist()):
            assert max_diff(h[i, :n], alibi.bert(tokens[i : i + 1, :n], segments[i : i + 1, :n])[0]) <= 1e-5
        fast = alibi(tokens, segments).logits
        alibi.fast_inference = False
        assert max_diff(fast, alibi(tokens, segments).logits) <= 1e-5
    with pytest.raises(ValueError, match="position_bias is 'alibi'"):
        to_hf(BertForMaskedLM(alibi_cfg))


def test_mean_pool_classifier_reads_the_real_tokens_mean_is_padding_invariant_and_not_exported():
    """model.pool=mean (the demo's fine-tuning): the pooler reads the mean of the real tokens' last-layer
    vectors, by hand from the plain encoder; padding changes no logit; the fast inference path (padding
    skipped) equals the plain one; export to Hugging Face (which reads [CLS]) is refused. Catches: a mean that
    counts padding rows, the flag ignored ([CLS] read: the by-hand mean differs from it), a fast path that
    leaves padding in the sum."""
    from nanofm.interop import to_hf

    model = BertForSequenceClassification(BertConfig(**{**CFG.__dict__, "pool": "mean"})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        tokens, segments, real = _inputs()
        fast = model(tokens, segments).logits  # (B, C)
        h = model.bert(tokens, segments)  # (B, T, D), the plain encoder
        by_hand = torch.stack([h[i, real[i]].mean(0) for i in range(len(h))])  # (B, D)
        expected = model.classifier(model.bert.pooler(by_hand[:, None]))
        assert max_diff(fast, expected) <= 1e-5
        assert max_diff(expected, model.classifier(model.bert.pooler(h))) > 1e-3  # the [CLS] vector differs
        model.fast_inference = False
        assert max_diff(fast, model(tokens, segments).logits) <= 1e-5
        for i, n in enumerate(real.sum(1).tolist()):
            assert max_diff(fast[i], model(tokens[i : i + 1, :n], segments[i : i + 1, :n]).logits[0]) <= 1e-5
    with pytest.raises(ValueError, match="pool is 'mean'"):
        to_hf(model)
