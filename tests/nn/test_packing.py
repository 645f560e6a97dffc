"""Packed rows with the block-diagonal mask give every document the outputs it gets alone."""

import pytest
import torch

from nanofm.core import Encoder, document_mask, document_positions, sinusoidal_table
from tests.helpers import max_diff

D, H = 32, 4
LENGTHS = [[5, 9, 3], [11, 4]]  # two packed rows: documents of these lengths


def _docs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(n, D, generator=g) for n in row] for row in LENGTHS]


def _pack(docs, t):
    """-> x (B, t, D) rows of concatenated documents, right-padded; doc_ids (B, t), -1 at padding."""
    x = torch.zeros(len(docs), t, D)
    doc_ids = torch.full((len(docs), t), -1)
    for b, row in enumerate(docs):
        cat = torch.cat(row)
        x[b, : len(cat)] = cat
        doc_ids[b, : len(cat)] = torch.repeat_interleave(torch.arange(len(row)), torch.tensor([len(d) for d in row]))
    return x, doc_ids


def test_document_positions_restart_per_document():
    doc_ids = torch.tensor([[0, 0, 0, 1, 1, 2, -1, -1]])
    assert document_positions(doc_ids).tolist() == [[0, 1, 2, 0, 1, 0, 0, 1]]
    mask = document_mask(doc_ids)[0, 0]
    assert mask[0, :3].all() and not mask[0, 3:].any() and mask[3, 3:5].all() and not mask[3, :3].any()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])  # the SDPA path and the explicit one
def test_packed_documents_equal_unpacked(norm_first, need_weights):
    torch.manual_seed(0)
    enc = Encoder(2, D, H, 64, dropout=0.0, norm_first=norm_first).eval()
    pos = sinusoidal_table(32, D)
    docs = _docs()
    x, doc_ids = _pack(docs, 18)  # row 1 is padded
    x = x + pos[document_positions(doc_ids)]  # positions restart in every document
    out = enc(x, attn_mask=document_mask(doc_ids), padding_mask=doc_ids < 0, need_weights=need_weights)
    packed = out[0] if need_weights else out
    for b, row in enumerate(docs):
        start = 0
        for doc in row:
            alone = enc((doc + pos[: len(doc)])[None])[0]
            assert max_diff(packed[b, start : start + len(doc)], alone) < 1e-5
            start += len(doc)


def test_without_the_mask_packed_documents_see_each_other():
    torch.manual_seed(0)
    enc = Encoder(1, D, H, 64, dropout=0.0).eval()
    docs = _docs()
    x, doc_ids = _pack(docs, 18)
    alone = enc(docs[0][0][None])[0]
    assert max_diff(enc(x, padding_mask=doc_ids < 0)[0, :5], alone) > 1e-3
