"""BERT: tiny random transformers models read by nanofm give the same outputs (with padding); nanofm ->
Hugging Face -> nanofm is the identity; transformers loads nanofm's exports; what does not fit is refused."""

import dataclasses

import pytest
import torch
import transformers
from safetensors.torch import load_file

from nanofm.families.bert.model import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, BertModel
from nanofm.interop import WeightMismatchError, from_hf, load_hf, read_config, save_hf, to_hf

from .conftest import bert_config, jitter, padded_batch, record

HF_CLASSES = ["BertModel", "BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification", "BertForPreTraining"]
VARIANTS = {"default": {}, "tanh-gelu, eps 1e-6, pad 1, 3 segments": dict(
    hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, pad_token_id=1, type_vocab_size=3)}


def _hf_output(name: str) -> str:
    return {"BertModel": "last_hidden_state", "BertForPreTraining": "prediction_logits"}.get(name, "logits")


def _saved(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", HF_CLASSES)
def test_hf_bert_read_by_nanofm_gives_the_same_outputs(name, variant, tmp_path):
    c = bert_config(**VARIANTS[variant])
    hf = jitter(getattr(transformers, name)(c))
    conv = load_hf(_saved(hf, tmp_path))
    ours = conv.model.eval()
    assert type(ours).__name__ == ("BertForMaskedLM" if name == "BertForPreTraining" else name)
    tokens, segments, mask = padded_batch(c.vocab_size, c.pad_token_id)
    segments = segments * (c.type_vocab_size - 1)  # the last segment id too
    with torch.no_grad():
        theirs = getattr(hf(input_ids=tokens, token_type_ids=segments, attention_mask=mask), _hf_output(name))
        out = ours(tokens, segments)
        out = out if name == "BertModel" else out.logits
    record(f"tiny {name} ({variant})", out, theirs)
    if name == "BertForPreTraining":  # the next-sentence head and pooler, dropped by name
        assert [d.split()[0] for d in conv.dropped] == ["bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                                        "cls.seq_relationship.bias", "cls.seq_relationship.weight"]
    with torch.no_grad():  # the comparison is live: a small change to one weight shows
        getattr(ours, "bert", ours).embed_norm.bias.add_(1e-3)
        changed = ours(tokens, segments)
    assert ((changed if name == "BertModel" else changed.logits) - theirs).abs().max() > 1e-5


def test_encoder_of_any_bert_folder(tmp_path):
    hf = jitter(transformers.BertForSequenceClassification(bert_config()))
    conv = load_hf(_saved(hf, tmp_path), target="BertModel")
    assert isinstance(conv.model, BertModel) and conv.model.pooler is not None
    assert [d.split()[0] for d in conv.dropped] == ["classifier.bias", "classifier.weight"]
    tokens, segments, mask = padded_batch(60)
    with torch.no_grad():
        pooled = hf.bert(input_ids=tokens, token_type_ids=segments, attention_mask=mask).pooler_output
        record("tiny BertForSequenceClassification encoder + pooler", conv.model.pooler(conv.model.eval()(tokens, segments)), pooled)


def _nanofm(cls, **kw):
    cfg = BertConfig(vocab_size=60, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=32, n_labels=4, **kw)
    return jitter(BertModel(cfg) if cls is BertModel else cls(cfg))


CLASSES = [BertModel, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification]
AUTO = {BertModel: "AutoModel", BertForMaskedLM: "AutoModelForMaskedLM",
        BertForSequenceClassification: "AutoModelForSequenceClassification",
        BertForTokenClassification: "AutoModelForTokenClassification"}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_nanofm_hf_nanofm_is_the_identity(cls, tmp_path):
    ours = _nanofm(cls, act="gelu_tanh", norm_eps=1e-7, classifier_dropout=0.2)
    labels = ["neg", "neu", "pos", "mixed"] if "Classification" in cls.__name__ else None
    save_hf(ours, tmp_path, labels)
    back = load_hf(tmp_path)
    assert type(back.model) is cls and back.dropped == [] and back.labels == labels
    same = dataclasses.replace(ours.cfg, n_labels=back.model.cfg.n_labels)  # a classifier's n_labels: from id2label
    assert back.model.cfg == (ours.cfg if labels else same)
    a, b = ours.state_dict(), back.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_transformers_loads_the_export(cls, tmp_path):
    ours = _nanofm(cls)
    save_hf(ours, tmp_path)
    hf, info = getattr(transformers, AUTO[cls]).from_pretrained(tmp_path, output_loading_info=True)
    assert type(hf).__name__ == cls.__name__
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    tokens, segments, mask = padded_batch(60)
    with torch.no_grad():
        theirs = hf.eval()(input_ids=tokens, token_type_ids=segments, attention_mask=mask)
        out = ours(tokens, segments)
    record(f"nanofm {cls.__name__} loaded by transformers.{AUTO[cls]}",
           out if cls is BertModel else out.logits, theirs.last_hidden_state if cls is BertModel else theirs.logits)


def test_mismatched_weights_are_listed(tmp_path):
    hf = transformers.BertForMaskedLM(bert_config())
    weights = load_file(_saved(hf, tmp_path) / "model.safetensors")
    config = read_config(tmp_path)
    del weights["bert.encoder.layer.1.attention.self.key.bias"]
    weights["bert.encoder.layer.0.extra.weight"] = torch.zeros(3)
    weights["cls.predictions.transform.dense.weight"] = torch.zeros(32, 31)
    with pytest.raises(WeightMismatchError) as e:
        from_hf(config, weights)
    msg = str(e.value)
    assert "1 missing: bert.encoder.layer.1.attention.self.key.bias" in msg
    assert "1 unexpected: bert.encoder.layer.0.extra.weight" in msg
    assert "1 mis-shaped: cls.predictions.transform.dense.weight (32, 31) (nanofm mlm_head.dense.weight (32, 32))" in msg


def test_untied_decoder_is_refused(tmp_path):
    hf = transformers.BertForMaskedLM(bert_config())
    weights, config = load_file(_saved(hf, tmp_path) / "model.safetensors"), read_config(tmp_path)
    weights["cls.predictions.decoder.weight"] = weights["bert.embeddings.word_embeddings.weight"] + 1
    with pytest.raises(WeightMismatchError, match="cls.predictions.decoder.weight differs from .*nanofm ties them"):
        from_hf(config, weights)
    weights["cls.predictions.decoder.weight"] = weights["bert.embeddings.word_embeddings.weight"].clone()  # an old tied copy
    assert isinstance(from_hf(config, weights).model, BertForMaskedLM)
    weights["cls.predictions.decoder.bias"] = weights.pop("cls.predictions.bias")  # only the tied copy's name
    assert torch.equal(from_hf(config, weights).model.mlm_head.decoder.bias, weights["cls.predictions.decoder.bias"])
    with pytest.raises(ValueError, match="tie_word_embeddings is false"):
        from_hf({**config, "tie_word_embeddings": False}, weights)


@pytest.mark.parametrize("change, message", [
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key': nanofm's BERT has absolute"),
    ({"is_decoder": True}, "a BERT decoder"),
    ({"hidden_act": "gelu_fast"}, "hidden_act 'gelu_fast'"),
    ({"problem_type": "regression"}, "problem_type 'regression'"),
    ({"architectures": ["BertForQuestionAnswering"]}, "BertForQuestionAnswering: nanofm reads"),
    ({"model_type": "roberta"}, "model_type 'roberta': nanofm reads BERT and ViT"),
])
def test_unrepresentable_configs_are_refused(change, message, tmp_path):
    hf = transformers.BertForMaskedLM(bert_config())
    weights, config = load_file(_saved(hf, tmp_path) / "model.safetensors"), read_config(tmp_path)
    with pytest.raises(ValueError, match=message):
        from_hf({**config, **change}, weights)


def test_export_of_a_classifier_needs_matching_labels():
    with pytest.raises(ValueError, match="2 class names for a head of 4 classes"):
        to_hf(_nanofm(BertForSequenceClassification), ["a", "b"])
