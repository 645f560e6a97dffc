"""BERT (Devlin et al. 2019): token + position + segment embeddings, LayerNorm, a post-norm Transformer
encoder with exact GELU, and heads for masked-language-model pretraining and fine-tuning. Composition of
the shared core only.

Pretraining scores the MLM head only at the masked positions; fine-tuning puts a classifier on the pooled
[CLS] vector (sequences, and sentence pairs told apart by segment ids) or on every token. To fine-tune a
pretrained model, build the fine-tuning model from the same config and `load_pretrained_encoder` into it.

Every model takes tokens (B, T) ids, segments (B, T) in [0, n_segments) (None: all 0), targets (optional)
and padding_mask (B, T), True at padding (None: where tokens == pad_id); it returns a ModelOutput.

Legend: B batch, T length, N positions with a target, D model width, V vocabulary, C classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core import Encoder, LearnedPositionalEmbedding, fast
from nanofm.core.positional import alibi_slopes, distance_bias
from nanofm.core.output import IGNORE_INDEX, ModelOutput
from nanofm.errors import DataError
from nanofm.families.bert.heads import ClassificationHead, MLMHead, Pooler


@dataclass
class BertConfig:
    vocab_size: int = 31002  # WordPiece vocabulary (BETO's has 31,002 entries)
    d_model: int = 768  # width of every token vector (BERT's hidden size)
    n_layers: int = 12  # encoder blocks
    n_heads: int = 12  # attention heads; d_model must be divisible by it (64 wide in the presets)
    d_ff: int = 3072  # hidden width of the feed-forward layers (4 * d_model in the presets)
    max_len: int = 512  # longest sequence, [CLS] and [SEP] included (learned positions)
    n_segments: int = 2  # segment embeddings: sentence A = 0, sentence B = 1
    dropout: float = 0.1  # on embeddings, residual branches and inside the feed-forward layer
    attn_dropout: float = 0.1  # on attention weights
    classifier_dropout: float | None = None  # before the classification heads; None: the same as dropout
    act: Literal["relu", "gelu", "gelu_tanh", "quick_gelu", "silu"] = "gelu"  # exact erf GELU, as BERT
    norm_eps: float = 1e-12  # LayerNorm epsilon (BERT's value)
    init_std: float = 0.02  # std of the normal init of every weight matrix, embedding and position
    pad_id: int = 0  # [PAD] token id: positions holding it are left out of attention by default
    n_labels: int = 2  # classes of the sequence / token classification heads (fine-tuning only)
    position_bias: Literal["none", "alibi"] = "none"  # alibi: every head's attention scores also fall with
    # the distance between tokens (ALiBi made symmetric, as MosaicBERT), beside the learned positions. Nearby
    # words are what masked words are first guessed from, and learning to look at them from learned positions
    # alone is BERT's plateau: see docs/bert.md. "none" is BERT's, the only one Hugging Face's BERT has.
    alibi_slopes: list[float] | None = None  # one per head, the steeper the more local; None: the defaults of
    # core.positional.alibi_slopes (2 heads: 1/2 and 1/32)
    norm_first: bool = False  # pre-norm blocks and a final LayerNorm (Cramming's choice: trains stably at
    # learning rates where BERT's post-norm collapses); False is BERT's, the only layout Hugging Face's BERT has
    pool: Literal["cls", "mean"] = "cls"  # what the sequence classifier's pooler reads: the [CLS] vector (BERT's,
    # the only one Hugging Face's BERT has) or the mean of the real tokens' vectors. MLM pretraining never
    # trains the last layer's [CLS] vector, while it trains every token's: see docs/bert.md

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}", ("d_model", "n_heads"))
        drops = (self.dropout, self.attn_dropout, self.dropout if self.classifier_dropout is None else self.classifier_dropout)
        if not all(0.0 <= p < 1.0 for p in drops):
            raise ConfigError("dropout, attn_dropout and classifier_dropout must be in [0, 1)",
                              ("dropout", "attn_dropout", "classifier_dropout"))
        if self.alibi_slopes is not None and len(self.alibi_slopes) != self.n_heads:
            raise ConfigError(f"alibi_slopes has {len(self.alibi_slopes)} slopes for {self.n_heads} heads", ("alibi_slopes",))
        if self.n_labels < 1:
            raise ConfigError(f"n_labels must be at least 1, got {self.n_labels}", ("n_labels",))


class BertModel(nn.Module):
    """The BERT encoder: tokens (B, T) -> hidden states (B, T, D); `pooler` (when built) maps them to (B, D)."""

    def __init__(self, cfg: BertConfig, pooler: bool = True):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.tok_embed = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_id)
        self.pos_embed = LearnedPositionalEmbedding(d, cfg.max_len)
        self.seg_embed = nn.Embedding(cfg.n_segments, d)
        self.embed_norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Encoder(
            cfg.n_layers, d, cfg.n_heads, cfg.d_ff,
            dropout=cfg.dropout, attn_dropout=cfg.attn_dropout, act=cfg.act, norm_first=cfg.norm_first, norm_eps=cfg.norm_eps,
        )  # fmt: skip
        self.pooler = Pooler(d) if pooler else None
        alibi = torch.empty(0)
        if cfg.position_bias == "alibi":
            alibi = torch.tensor(cfg.alibi_slopes) if cfg.alibi_slopes else alibi_slopes(cfg.n_heads)
        self.register_buffer("slopes", alibi, persistent=False)  # (H,); empty without a distance bias

    def forward(
        self,
        tokens: Tensor,
        segments: Tensor | None = None,
        padding_mask: Tensor | None = None,
        query_positions: slice | Tensor | None = None,
        skip_padding: bool = False,
    ) -> Tensor:
        """Hidden states (B, T, D). Inference shortcuts (core/fast.py, equal results where read):
        query_positions (slice(0, 1): only [CLS]) returns (B, Tq, D) with the last layer computed there only;
        skip_padding runs the projections and feed-forwards on the real tokens only (padding rows come back 0)."""
        if padding_mask is None:
            padding_mask = tokens == self.cfg.pad_id  # (B, T)
        seg = self.seg_embed(segments) if segments is not None else self.seg_embed.weight[0]
        x = self.drop(self.embed_norm(self.pos_embed(self.tok_embed(tokens) + seg)))  # (B, T, D)
        # full rows (packed pretraining blocks) take SDPA's unmasked fast path
        padding_mask = padding_mask if padding_mask.any() else None
        if self.slopes.numel():  # the fast paths have no position bias: the plain path, then the rows asked for
            h = self.encoder(x, attn_mask=distance_bias(self.slopes, x.size(1)), padding_mask=padding_mask)
            return h if query_positions is None else h[:, query_positions]
        if query_positions is None and not skip_padding:
            return self.encoder(x, padding_mask=padding_mask)
        return fast.encode(self.encoder, x, padding_mask, query_positions=query_positions, skip_padding=skip_padding)


class BertForMaskedLM(nn.Module):
    """BERT with the MLM head, its output projection tied to the token embeddings; no pooler (MLM
    pretraining never trains it).

    forward(tokens, segments, targets): targets (B, T) hold the original ids at the positions to predict
    and IGNORE_INDEX elsewhere. The head runs ONLY at those N positions (a 1/0.15 saving on the largest
    matmul): logits are (N, V), row k scoring targets[targets != IGNORE_INDEX][k] (row-major order, batch
    then position). Without targets, logits are (B, T, V) at every position (fill-mask)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.bert = BertModel(cfg, pooler=False)
        self.mlm_head = MLMHead(cfg.d_model, cfg.vocab_size, cfg.act, cfg.norm_eps, tied_weight=self.bert.tok_embed.weight)
        _init_bert(self, cfg)

    def forward(
        self, tokens: Tensor, segments: Tensor | None = None, targets: Tensor | None = None, padding_mask: Tensor | None = None
    ) -> ModelOutput:
        h = self.bert(tokens, segments, padding_mask)  # (B, T, D)
        if targets is None:
            return ModelOutput(logits=self.mlm_head(h))  # (B, T, V)
        selected = targets != IGNORE_INDEX  # (B, T)
        logits = self.mlm_head(h[selected])  # (N, V)
        return _output(logits, targets[selected])


class BertForSequenceClassification(nn.Module):
    """A classifier on the pooled [CLS] vector (cfg.pool "mean": on the mean of the real tokens' vectors):
    logits (B, C), targets (B,) class ids. A sentence pair is
    one sequence [CLS] A [SEP] B [SEP] with segments 0 over [CLS] A [SEP] and 1 over B [SEP].

    In eval mode (`fast_inference`, on by default) the encoder runs its fast paths: every projection and
    feed-forward skips the padding, and with [CLS] pooling (only [CLS] is read) the last layer computes
    queries, attention output and feed-forward at position 0 only. The logits equal the plain path's; training (dropout
    on) always takes the plain path."""

    fast_inference: bool = True

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.bert = BertModel(cfg, pooler=True)
        self.classifier = ClassificationHead(cfg.d_model, cfg.n_labels, _classifier_dropout(cfg))
        _init_bert(self, cfg)

    def forward(
        self, tokens: Tensor, segments: Tensor | None = None, targets: Tensor | None = None, padding_mask: Tensor | None = None
    ) -> ModelOutput:
        fast = self.fast_inference and not self.training
        if self.cfg.pool == "mean":
            pad = tokens == self.cfg.pad_id if padding_mask is None else padding_mask  # (B, T)
            h = self.bert(tokens, segments, pad, skip_padding=fast)  # (B, T, D), padding rows 0 when fast
            real = (~pad).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            h = (h * real).sum(1, keepdim=True) / real.sum(1, keepdim=True).clamp(min=1)  # (B, 1, D)
        else:
            h = self.bert(tokens, segments, padding_mask, query_positions=slice(0, 1) if fast else None, skip_padding=fast)
        logits = self.classifier(self.bert.pooler(h))  # (B, C)
        return ModelOutput(logits=logits) if targets is None else _output(logits, targets, logits)


class BertForTokenClassification(nn.Module):
    """A classifier on every token: logits (B, T, C). targets (B, T): a word's label on its FIRST sub-word,
    IGNORE_INDEX on its other sub-words, on [CLS]/[SEP] and on padding."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.bert = BertModel(cfg, pooler=False)
        self.classifier = ClassificationHead(cfg.d_model, cfg.n_labels, _classifier_dropout(cfg))
        _init_bert(self, cfg)

    def forward(
        self, tokens: Tensor, segments: Tensor | None = None, targets: Tensor | None = None, padding_mask: Tensor | None = None
    ) -> ModelOutput:
        logits = self.classifier(self.bert(tokens, segments, padding_mask))  # (B, T, C)
        if targets is None:
            return ModelOutput(logits=logits)
        selected = targets != IGNORE_INDEX
        return _output(logits[selected], targets[selected], logits)


def load_pretrained_encoder(model: nn.Module, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Copy pretrained BERT weights into `model.bert` (any Bert* model above, built from the pretrained
    model's config with only n_labels / dropouts changed). `state_dict` is a whole model's (for example a
    pretraining checkpoint's model.safetensors, keys under "bert.") or a BertModel's. Heads are left as
    initialised, and so is the pooler when the weights have none (MLM pretraining trains no pooler).
    Returns the names of model.bert's weights that were left as initialised; anything else that does not
    match (a missing encoder weight, a stray key, a wrong shape) is an error."""
    prefix = "bert."
    sd = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)} or dict(state_dict)
    if model.bert.pooler is None:
        sd = {k: v for k, v in sd.items() if not k.startswith("pooler.")}
    result = model.bert.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
    if missing or result.unexpected_keys:
        unexpected = result.unexpected_keys[:5]
        raise DataError(f"pretrained weights do not match the encoder: missing {missing[:5]}, unexpected {unexpected}")
    return result.missing_keys


def _output(logits: Tensor, targets: Tensor, full_logits: Tensor | None = None) -> ModelOutput:
    """Mean cross-entropy over targets != IGNORE_INDEX (0, not NaN, when there are none)."""
    n = (targets != IGNORE_INDEX).sum()
    loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum") / n.clamp(min=1)
    return ModelOutput(loss=loss, logits=logits if full_logits is None else full_logits, n_targets=n)


def _classifier_dropout(cfg: BertConfig) -> float:
    return cfg.dropout if cfg.classifier_dropout is None else cfg.classifier_dropout


@torch.no_grad()
def _init_bert(model: nn.Module, cfg: BertConfig) -> None:
    """BERT's init: N(0, init_std) weights, embeddings and positions; zero biases; LayerNorms at 1 and 0;
    the padding embedding at zero (it runs last: the tied MLM projection is a Linear of the same table)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding, LearnedPositionalEmbedding)):
            nn.init.normal_(m.weight, std=cfg.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight), nn.init.zeros_(m.bias)
    model.bert.tok_embed.weight[cfg.pad_id].zero_()
