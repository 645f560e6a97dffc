"""The Transformer encoder-decoder of "Attention Is All You Need": token embeddings scaled by sqrt(D)
plus positions, an Encoder, a Decoder with cross-attention, and an output projection tied to the
target embedding. Composition of the shared core only.

Legend: B batch, S source length, T target length, D model width, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core import Decoder, Encoder, LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from nanofm.core.block import BlockCache
from nanofm.core.output import IGNORE_INDEX, ModelOutput
from nanofm.families.seq2seq.decoding import greedy_search


@dataclass
class EncoderDecoderConfig:
    vocab_size: int = 37000  # target vocabulary (and source, unless src_vocab_size is set)
    src_vocab_size: int | None = None  # a separate source vocabulary; None shares the target one
    d_model: int = 512  # width of every token vector
    n_heads: int = 8  # attention heads; d_model must be divisible by it
    n_encoder_layers: int = 6  # encoder blocks
    n_decoder_layers: int = 6  # decoder blocks
    d_ff: int = 2048  # hidden width of the feed-forward layers
    dropout: float = 0.1  # on embeddings, residual branches and inside the feed-forward layer
    attn_dropout: float = 0.0  # on attention weights
    act: Literal["relu", "gelu", "gelu_tanh", "quick_gelu", "silu"] = "relu"  # feed-forward activation
    norm_first: bool = False  # pre-norm blocks; False is the paper's post-norm
    max_len: int = 256  # longest source or target sequence
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"  # position encoding
    share_embeddings: bool = True  # one embedding table for source and target (needs one vocabulary)
    tie_output: bool = True  # output projection shares the target embedding's weights
    label_smoothing: float = 0.0  # 0.1 in the paper
    pad_id: int = 0  # padding token id
    bos_id: int = 1  # decoder start token id
    eos_id: int = 2  # end-of-sequence token id

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}",
                              ("d_model", "n_heads"))
        if self.share_embeddings and self.src_vocab_size not in (None, self.vocab_size):
            raise ConfigError("share_embeddings needs src_vocab_size unset or equal to vocab_size",
                              ("share_embeddings", "src_vocab_size"))
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("dropout and label_smoothing must be in [0, 1)", ("dropout", "label_smoothing"))


class EncoderDecoder(nn.Module):
    def __init__(self, cfg: EncoderDecoderConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.tgt_embed = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_id)
        self.src_embed = self.tgt_embed if cfg.share_embeddings else nn.Embedding(cfg.src_vocab_size or cfg.vocab_size, d, padding_idx=cfg.pad_id)
        pos = SinusoidalPositionalEncoding if cfg.positional == "sinusoidal" else LearnedPositionalEmbedding
        self.src_pos, self.tgt_pos = pos(d, cfg.max_len), pos(d, cfg.max_len)
        stack = dict(dropout=cfg.dropout, attn_dropout=cfg.attn_dropout, act=cfg.act, norm_first=cfg.norm_first)
        self.encoder = Encoder(cfg.n_encoder_layers, d, cfg.n_heads, cfg.d_ff, **stack)
        self.decoder = Decoder(cfg.n_decoder_layers, d, cfg.n_heads, cfg.d_ff, **stack)
        self.lm_head = nn.Linear(d, cfg.vocab_size, bias=False)
        if cfg.tie_output:
            self.lm_head.weight = self.tgt_embed.weight
        self.drop = nn.Dropout(cfg.dropout)
        self.apply(_init_weights)
        # last: a tied lm_head (a Linear) must not keep Xavier's init; in a fixed order (a set's order varies by run)
        for table in dict.fromkeys((self.tgt_embed, self.src_embed)):
            _init_embedding(table)

    def _embed(self, tokens: Tensor, table: nn.Embedding, pos: nn.Module, offset: int = 0) -> Tensor:
        return self.drop(pos(table(tokens) * math.sqrt(self.cfg.d_model), offset))  # (B, T, D)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """src (B, S) token ids -> memory (B, S, D) and its padding mask (B, S)."""
        src_pad = src == self.cfg.pad_id
        return self.encoder(self._embed(src, self.src_embed, self.src_pos), padding_mask=src_pad), src_pad

    def decode(
        self, tgt: Tensor, memory: Tensor, src_pad: Tensor, cache: list[BlockCache] | None = None, offset: int = 0
    ) -> Tensor:
        """tgt (B, T) decoder inputs (starting with BOS) -> logits (B, T, V). With a cache, tgt holds the new
        positions only, starting at position `offset`."""
        x = self._embed(tgt, self.tgt_embed, self.tgt_pos, offset)
        tgt_pad = None if cache is not None else tgt == self.cfg.pad_id
        h = self.decoder(x, memory, padding_mask=tgt_pad, context_padding_mask=src_pad, cache=cache)
        return self.lm_head(h)

    def forward(self, src: Tensor, tgt: Tensor, targets: Tensor | None = None) -> ModelOutput:
        """src (B, S), tgt (B, T) = BOS + target[:-1], targets (B, T) with IGNORE_INDEX at padding."""
        memory, src_pad = self.encode(src)
        logits = self.decode(tgt, memory, src_pad)
        if targets is None:
            return ModelOutput(logits=logits)
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(),
            targets.flatten(),
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.cfg.label_smoothing,
        )
        return ModelOutput(loss=loss, logits=logits, n_targets=(targets != IGNORE_INDEX).sum())

    # ---- step-by-step decoding (see models/decoding.py)

    def start(self, src: Tensor, use_cache: bool = True) -> DecodeState:
        memory, src_pad = self.encode(src)
        empty = torch.zeros(src.size(0), 0, dtype=torch.long, device=src.device)
        return DecodeState(memory, src_pad, self.decoder.new_cache() if use_cache else None, empty)

    def step(self, state: DecodeState, tokens: Tensor) -> Tensor:
        """tokens (N,) the previous outputs (BOS first) -> next-token logits (N, V)."""
        state.history = torch.cat([state.history, tokens[:, None]], dim=1)  # (N, t)
        if state.cache is None:  # recompute the whole prefix: what the cache saves
            return self.decode(state.history, state.memory, state.src_pad)[:, -1]
        pos = state.history.size(1) - 1
        return self.decode(tokens[:, None], state.memory, state.src_pad, state.cache, offset=pos)[:, -1]

    def reorder(self, state: DecodeState, index: Tensor, beams_only: bool = False) -> None:
        if not beams_only:  # the source side (memory, cross-attention keys/values) is the same for all beams
            state.memory, state.src_pad = state.memory.index_select(0, index), state.src_pad.index_select(0, index)
        state.history = state.history.index_select(0, index)
        for layer in state.cache or []:
            layer.reorder(index, cross=not beams_only)

    def generate(self, src: Tensor, max_new_tokens: int | None = None, use_cache: bool = True) -> Tensor:
        """Greedy decoding, batched. src (B, S) -> (B, <= max_new_tokens) ids, EOS included, PAD after it."""
        max_new = min(max_new_tokens or self.cfg.max_len - 1, self.cfg.max_len - 1)
        return greedy_search(self, src, max_new, use_cache=use_cache)

    @torch.no_grad()
    def attention_maps(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Cross-attention of every decoder layer, teacher-forced: (L, B, H, T, S)."""
        memory, src_pad = self.encode(src)
        x = self._embed(tgt, self.tgt_embed, self.tgt_pos)
        _, weights = self.decoder(x, memory, padding_mask=tgt == self.cfg.pad_id, context_padding_mask=src_pad, need_weights=True)
        return torch.stack([w["cross"] for w in weights])


@dataclass
class DecodeState:
    memory: Tensor  # (N, S, D) encoder output
    src_pad: Tensor  # (N, S) True at source padding
    cache: list[BlockCache] | None  # per decoder layer; None: recompute the prefix each step
    history: Tensor  # (N, t) decoder inputs so far


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        _init_embedding(module)


def _init_embedding(table: nn.Embedding) -> None:
    """N(0, D^-1/2): after the sqrt(D) scale, token vectors have unit-size entries, like the positions."""
    nn.init.normal_(table.weight, std=table.embedding_dim**-0.5)
    if table.padding_idx is not None:
        with torch.no_grad():
            table.weight[table.padding_idx].zero_()
