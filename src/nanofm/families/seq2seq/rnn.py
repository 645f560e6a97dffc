"""The baseline of the lecture: a GRU encoder-decoder with additive attention (Bahdanau et al. 2015).

The encoder is a bidirectional GRU over the source; the decoder is a GRU that, at every target step,
scores each source position against its previous state (v^T tanh(W s + U h_j)), takes the weighted
sum of the encoder states as context, and predicts the next token from its new state, the context and
the previous token. Trained with teacher forcing. It is sequential by construction: one step per token.

Legend: B batch, S source length, T target length, E embedding, H hidden, A attention width, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core.output import IGNORE_INDEX, ModelOutput
from nanofm.families.seq2seq.decoding import greedy_search


@dataclass
class Seq2SeqRNNConfig:
    vocab_size: int = 8000  # shared source / target vocabulary
    d_embed: int = 256  # token embedding width
    d_hidden: int = 512  # GRU width (per direction in the encoder)
    d_attn: int = 256  # width of the additive attention's hidden layer
    n_encoder_layers: int = 1  # stacked bidirectional GRU layers
    dropout: float = 0.1  # on embeddings and before the output layer
    label_smoothing: float = 0.0  # of the training loss
    max_len: int = 256  # longest target decoded
    pad_id: int = 0  # padding token id
    bos_id: int = 1  # decoder start token id
    eos_id: int = 2  # end-of-sequence token id

    def __post_init__(self):
        if min(self.vocab_size, self.d_embed, self.d_hidden, self.d_attn, self.n_encoder_layers) < 1:
            raise ConfigError("vocab_size, d_embed, d_hidden, d_attn and n_encoder_layers must be >= 1",
                              ("vocab_size", "d_embed", "d_hidden", "d_attn", "n_encoder_layers"))


class AdditiveAttention(nn.Module):
    """score(s, h_j) = v^T tanh(W s + U h_j), softmax over non-padding source positions."""

    def __init__(self, d_query: int, d_key: int, d_attn: int):
        super().__init__()
        self.w = nn.Linear(d_query, d_attn, bias=False)
        self.u = nn.Linear(d_key, d_attn)
        self.v = nn.Linear(d_attn, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:  # (B, S, 2H) -> (B, S, A), once per source
        return self.u(keys)

    def forward(self, query: Tensor, keys: Tensor, projected: Tensor, pad: Tensor) -> tuple[Tensor, Tensor]:
        """query (B, H), keys (B, S, 2H), projected (B, S, A), pad (B, S) -> context (B, 2H), weights (B, S)."""
        scores = self.v(torch.tanh(self.w(query)[:, None, :] + projected)).squeeze(-1)  # (B, S)
        weights = torch.softmax(scores.masked_fill(pad, float("-inf")), dim=-1)
        return torch.bmm(weights[:, None, :], keys).squeeze(1), weights


@dataclass
class RNNDecodeState:
    keys: Tensor  # (N, S, 2H) encoder states
    projected: Tensor  # (N, S, A) their attention projection
    pad: Tensor  # (N, S)
    hidden: Tensor  # (N, H) decoder state


class Seq2SeqRNN(nn.Module):
    def __init__(self, cfg: Seq2SeqRNNConfig):
        super().__init__()
        self.cfg = cfg
        e, h = cfg.d_embed, cfg.d_hidden
        self.embed = nn.Embedding(cfg.vocab_size, e, padding_idx=cfg.pad_id)
        self.encoder = nn.GRU(e, h, num_layers=cfg.n_encoder_layers, batch_first=True, bidirectional=True,
                              dropout=cfg.dropout if cfg.n_encoder_layers > 1 else 0.0)
        self.init_hidden = nn.Linear(2 * h, h)
        self.attention = AdditiveAttention(h, 2 * h, cfg.d_attn)
        self.decoder = nn.GRUCell(e + 2 * h, h)
        self.pre_output = nn.Linear(h + 2 * h + e, e)
        self.output = nn.Linear(e, cfg.vocab_size)
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, src: Tensor) -> RNNDecodeState:
        """src (B, S) -> encoder states and the decoder's initial state."""
        pad = src == self.cfg.pad_id
        lengths = (~pad).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.drop(self.embed(src)), lengths, batch_first=True, enforce_sorted=False)
        out, last = self.encoder(packed)
        keys, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, 2H)
        hidden = torch.tanh(self.init_hidden(torch.cat([last[-2], last[-1]], dim=-1)))  # last layer, both directions
        return RNNDecodeState(keys, self.attention.project_keys(keys), pad, hidden)

    def _step(self, state: RNNDecodeState, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """One decoder step: tokens (N,) -> logits (N, V) and attention weights (N, S); updates state.hidden."""
        emb = self.drop(self.embed(tokens))  # (N, E)
        context, weights = self.attention(state.hidden, state.keys, state.projected, state.pad)
        state.hidden = self.decoder(torch.cat([emb, context], dim=-1), state.hidden)
        features = torch.tanh(self.pre_output(torch.cat([state.hidden, context, emb], dim=-1)))
        return self.output(self.drop(features)), weights

    def forward(self, src: Tensor, tgt: Tensor, targets: Tensor | None = None) -> ModelOutput:
        """Teacher forcing: src (B, S), tgt (B, T) = BOS + target[:-1], targets (B, T) (IGNORE_INDEX at padding)."""
        state = self.encode(src)
        logits = torch.stack([self._step(state, tgt[:, t])[0] for t in range(tgt.size(1))], dim=1)  # (B, T, V)
        if targets is None:
            return ModelOutput(logits=logits)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                               label_smoothing=self.cfg.label_smoothing)
        return ModelOutput(loss=loss, logits=logits, n_targets=(targets != IGNORE_INDEX).sum())

    # ---- step-by-step decoding (see models/decoding.py); the GRU state is its own cache

    def start(self, src: Tensor, use_cache: bool = True) -> RNNDecodeState:
        return self.encode(src)

    def step(self, state: RNNDecodeState, tokens: Tensor) -> Tensor:
        return self._step(state, tokens)[0]

    def reorder(self, state: RNNDecodeState, index: Tensor, beams_only: bool = False) -> None:
        for name in ("hidden",) if beams_only else ("keys", "projected", "pad", "hidden"):
            setattr(state, name, getattr(state, name).index_select(0, index))

    def generate(self, src: Tensor, max_new_tokens: int | None = None, use_cache: bool = True) -> Tensor:
        return greedy_search(self, src, min(max_new_tokens or self.cfg.max_len, self.cfg.max_len))

    @torch.no_grad()
    def attention_maps(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Attention over the source at every target step, teacher-forced: (1, B, 1, T, S) (one layer, one head)."""
        state = self.encode(src)
        weights = torch.stack([self._step(state, tgt[:, t])[1] for t in range(tgt.size(1))], dim=1)  # (B, T, S)
        return weights[None, :, None]
