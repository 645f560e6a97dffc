"""Machine translation: the GRU-with-attention baseline and the Transformer, on sentence pairs in TSV.

Data: a folder with train.tsv, valid.tsv, test.tsv ("source<TAB>target" per line), as written by
`nanofm data prepare translation --pair es-en` or brought by the user. A BPE tokenizer shared by both
languages is trained on train.tsv only, cached in the data folder and copied beside the model.
Metrics: sacreBLEU's BLEU and chrF (greedy on part of valid while training; beam search on test).
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from nanofm.config import require, require_fits
from nanofm.core.output import IGNORE_INDEX
from nanofm.data import PadCollate
from nanofm.data.translation import read_tsv
from nanofm.engine import TrainConfig
from nanofm.engine.task import TaskParts
from nanofm.families.seq2seq.decoding import beam_search, greedy_search
from nanofm.families.seq2seq.rnn import Seq2SeqRNN, Seq2SeqRNNConfig
from nanofm.families.seq2seq.transformer import EncoderDecoder, EncoderDecoderConfig
from nanofm.progress import progress_bar
from nanofm.registry import get_config
from nanofm.runs import open_run, pick_device
from nanofm.text import Tokenizer, train_bpe
from nanofm.text_files import decode_user_text, split_lines


@dataclass
class TranslationDataConfig:
    dir: str = "data/translation-es-en"  # folder with train.tsv, valid.tsv, test.tsv
    vocab_size: int = 8000  # BPE vocabulary shared by both languages, learned on train.tsv only
    max_tokens: int = 96  # training pairs longer than this (either side) are left out
    bleu_sentences: int = 300  # valid sentences translated (greedy) at each evaluation for BLEU / chrF (0: loss only)
    valid_sentences: int | None = None  # evaluate on the first this many valid pairs only (None: all of them)
    test_beam: int = 4  # beam size of the final test report (1 = greedy)
    length_penalty: float = 0.6  # GNMT length-penalty exponent for beam search

    def __post_init__(self):
        require(self.bleu_sentences >= 0, f"must be 0 (loss only) or more, got {self.bleu_sentences}", "bleu_sentences")
        require(self.valid_sentences is None or self.valid_sentences >= 1,
                f"must be at least 1 (or null: all), got {self.valid_sentences}", "valid_sentences")


def _train_defaults(lr: float) -> TrainConfig:
    return TrainConfig(steps=4000, batch_size=64, lr=lr, warmup_steps=200, eval_every=500, save_every=500,
                       best_metric="eval/bleu", best_mode="max", log_every=20)


@dataclass
class TranslateTransformerConfig:
    task: Literal["translate-transformer"] = "translate-transformer"  # which task this config is for
    model: EncoderDecoderConfig = field(default_factory=lambda: get_config("transformer-small"))  # vocab_size: set from the tokenizer
    data: TranslationDataConfig = field(default_factory=TranslationDataConfig)  # sentence pairs and tokenizer
    train: TrainConfig = field(default_factory=lambda: _train_defaults(1e-3))  # the training run

    def __post_init__(self):
        require_fits(self, "data.max_tokens", specials=1)  # source + EOS, BOS + target (the RNN has no positions)


@dataclass
class TranslateRNNConfig:
    task: Literal["translate-rnn"] = "translate-rnn"  # which task this config is for
    model: Seq2SeqRNNConfig = field(default_factory=lambda: get_config("rnn-small"))  # vocab_size: set from the tokenizer
    data: TranslationDataConfig = field(default_factory=TranslationDataConfig)  # sentence pairs and tokenizer
    train: TrainConfig = field(default_factory=lambda: _train_defaults(2e-3))  # the training run


TranslationConfig = TranslateTransformerConfig | TranslateRNNConfig


def build_model(cfg: TranslationConfig) -> EncoderDecoder | Seq2SeqRNN:
    return EncoderDecoder(cfg.model) if cfg.task == "translate-transformer" else Seq2SeqRNN(cfg.model)


# ---------------------------------------------------------------- data


def load_tokenizer(data: TranslationDataConfig, train_pairs: list[tuple[str, str]]) -> tuple[Tokenizer, Path]:
    """The BPE tokenizer for this data and vocabulary size: loaded if cached beside the data, else trained
    on the training pairs (both sides) and cached. The cache name carries a hash of train.tsv."""
    train_file = Path(data.dir) / "train.tsv"
    digest = hashlib.sha256(train_file.read_bytes()).hexdigest()[:12]
    path = Path(data.dir) / f"tokenizer-bpe{data.vocab_size}-{digest}.json"
    if path.exists():
        return Tokenizer.load(path), path
    texts = [s for pair in train_pairs for s in pair]
    tok = train_bpe(texts, data.vocab_size)
    tok.save(path)
    return tok, path


class TranslationDataset(torch.utils.data.Dataset):
    """Tokenized pairs: {src: x + EOS, tgt: BOS + y, targets: y + EOS}; `pairs` keeps the raw text."""

    def __init__(self, pairs: list[tuple[str, str]], tok: Tokenizer, max_tokens: int, drop_long: bool):
        src, tgt = tok.encode_batch([p[0] for p in pairs]), tok.encode_batch([p[1] for p in pairs])
        keep = [i for i in range(len(pairs)) if not drop_long or (len(src[i]) <= max_tokens and len(tgt[i]) <= max_tokens)]
        self.pairs = [pairs[i] for i in keep]
        self.src = [torch.tensor(src[i][:max_tokens] + [tok.eos_id]) for i in keep]
        self.tgt = [torch.tensor(tgt[i][:max_tokens]) for i in keep]
        self.bos, self.eos = torch.tensor([tok.bos_id]), torch.tensor([tok.eos_id])
        self.lengths = [max(len(s), len(t) + 1) for s, t in zip(self.src, self.tgt)]  # for length-grouped batches

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        y = self.tgt[i]
        return {"src": self.src[i], "tgt": torch.cat([self.bos, y]), "targets": torch.cat([y, self.eos])}


def collate_for(tok: Tokenizer) -> PadCollate:
    return PadCollate({"src": tok.pad_id, "tgt": tok.pad_id, "targets": IGNORE_INDEX})


# ---------------------------------------------------------------- translating and scoring


def decode_limit(src_len: int) -> int:
    """The longest output decoded for a source of src_len tokens: an untrained model that never says EOS
    costs 1.5x + 10 tokens, not the model's maximum length."""
    return int(src_len * 1.5 + 10)


def subset(data: TranslationDataset, n: int | None, max_tokens: int | None = None) -> TranslationDataset:
    """n pairs spread evenly over the split (all of them when n is None or larger), in order; with
    max_tokens, among the pairs whose both sides have at most that many tokens only."""
    pool = [i for i in range(len(data)) if max_tokens is None or max(len(data.src[i]) - 1, len(data.tgt[i])) <= max_tokens]
    n = len(pool) if n is None else min(n, len(pool))
    if n == len(data):
        return data
    picked = [pool[round(i * len(pool) / n)] for i in range(n)]
    out = TranslationDataset.__new__(TranslationDataset)
    out.pairs, out.src, out.tgt = [data.pairs[i] for i in picked], [data.src[i] for i in picked], [data.tgt[i] for i in picked]
    out.bos, out.eos, out.lengths = data.bos, data.eos, [data.lengths[i] for i in picked]
    return out


@torch.no_grad()
def translate_ids(model, sources: list[Tensor], pad_id: int, beam: int = 1, alpha: float = 0.6,
                  max_len: int = 128, batch_size: int = 64, progress: bool = False) -> list[list[int]]:
    """Token ids (each ending in EOS) -> output ids, in order; batches sorted by length for speed. With
    `progress`, a bar over the sentences when they make more than a few batches."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs: list[list[int]] = [[] for _ in sources]
    how = "greedy" if beam == 1 else f"beam {beam}"
    with progress_bar(total=len(order), desc=f"decoding ({how})", unit="sentence",
                      enabled=progress and len(order) > 3 * batch_size) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            src = torch.nn.utils.rnn.pad_sequence([sources[i] for i in idx], batch_first=True, padding_value=pad_id).to(device)
            limit = min(max_len, decode_limit(src.size(1)))
            out = greedy_search(model, src, limit) if beam == 1 else beam_search(model, src, beam, limit, alpha)
            for i, row in zip(idx, out.tolist()):
                outputs[i] = row
            bar.update(len(idx))
    return outputs


def score(hypotheses: list[str], references: list[str]) -> dict[str, object]:
    """sacreBLEU corpus BLEU and chrF, with their signatures."""
    import sacrebleu

    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    b, c = bleu.corpus_score(hypotheses, [references]), chrf.corpus_score(hypotheses, [references])
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


def make_metrics(tok: Tokenizer, n_sentences: int):
    def compute_metrics(model, data: TranslationDataset) -> dict[str, float]:
        n = min(n_sentences, len(data))
        outs = translate_ids(model, data.src[:n], tok.pad_id, max_len=model.cfg.max_len - 1)
        s = score([tok.decode(o) for o in outs], [data.pairs[i][1] for i in range(n)])
        return {"bleu": s["bleu"], "chrf": s["chrf"]}

    return compute_metrics


def evaluate_test(model, tok: Tokenizer, test: TranslationDataset, beam: int, alpha: float,
                  progress: bool = False) -> dict[str, object]:
    """Translate the whole test split (with a progress bar if `progress`); BLEU, chrF, signatures, and
    decoding speed."""
    t = time.perf_counter()
    outs = translate_ids(model, test.src, tok.pad_id, beam=beam, alpha=alpha, max_len=model.cfg.max_len - 1,
                         progress=progress)
    seconds = time.perf_counter() - t
    hyps = [tok.decode(o) for o in outs]
    result = score(hyps, [p[1] for p in test.pairs])
    n_tokens = sum(min(len(o), o.index(tok.eos_id) + 1 if tok.eos_id in o else len(o)) for o in outs)
    result.update(sentences=len(hyps), seconds=seconds, sentences_per_s=len(hyps) / seconds,
                  tokens_per_s=n_tokens / seconds, beam=beam, hypotheses=hyps)
    return result


def format_test(result: dict[str, object], split: str = "test") -> str:
    return (f"{split}: BLEU {result['bleu']:.2f}, chrF {result['chrf']:.2f} on {result['sentences']} sentences "
            f"(beam {result['beam']}, {result['sentences_per_s']:.1f} sentences/s)\n"
            f"  {result['bleu_signature']}\n  {result['chrf_signature']}")


# ---------------------------------------------------------------- the task


def build(cfg: TranslationConfig) -> TaskParts:
    root = Path(cfg.data.dir)
    missing = [n for n in ("train.tsv", "valid.tsv", "test.tsv") if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{root}: missing {', '.join(missing)}; run `nanofm data prepare translation --pair es-en --out {root}` "
            "or set data.dir to a folder of your own TSV files"
        )
    train_pairs = read_tsv(root / "train.tsv")
    tok, tok_path = load_tokenizer(cfg.data, train_pairs)
    cfg = replace(cfg, model=replace(cfg.model, vocab_size=tok.vocab_size, pad_id=tok.pad_id, bos_id=tok.bos_id,
                                     eos_id=tok.eos_id))
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    train = TranslationDataset(train_pairs, tok, cfg.data.max_tokens, drop_long=True)
    valid = TranslationDataset(read_tsv(root / "valid.tsv"), tok, cfg.model.max_len - 2, drop_long=False)
    valid = subset(valid, cfg.data.valid_sentences)
    test = TranslationDataset(read_tsv(root / "test.tsv"), tok, cfg.model.max_len - 2, drop_long=False)

    def report(model, eval_data, metrics) -> str:
        result = evaluate_test(model, tok, test, cfg.data.test_beam, cfg.data.length_penalty)
        lines = [format_test(result)]
        for i in range(min(3, len(test))):
            lines.append(f"  {test.pairs[i][0]}\n    -> {result['hypotheses'][i]}\n    (reference: {test.pairs[i][1]})")
        return "\n".join(lines)

    arch = "Transformer encoder-decoder" if cfg.task == "translate-transformer" else "GRU encoder-decoder with additive attention"
    return TaskParts(
        model=model, train_data=train, eval_data=valid, collate=collate_for(tok),
        compute_metrics=make_metrics(tok, cfg.data.bleu_sentences) if cfg.data.bleu_sentences else None, report=report,
        describe=(f"translation ({root.name}): {arch}; {len(train)} training pairs, {len(valid)} valid, {len(test)} test; "
                  f"BPE vocabulary {tok.vocab_size}"),
        files={"tokenizer.json": tok_path},
        tokenizer=tok, test_data=test, config=cfg,
    )


# ---------------------------------------------------------------- using a trained run


def read_lines(path: str | Path | None = None) -> list[str]:
    r"""The lines of a UTF-8 file (None: standard input), split at "\n" (or "\r\n") only, so that outputs align
    with input lines: form feeds, U+2028 and the like stay inside their line; a final newline adds no line."""
    if path is None and not hasattr(sys.stdin, "buffer"):  # a replaced stdin (a notebook, a test) holding text
        text = sys.stdin.read()
    else:  # bytes, so that the newlines are the file's own and a bad encoding names the file and line
        text = decode_user_text(sys.stdin.buffer.read() if path is None else Path(path).read_bytes(), path or "<stdin>")
    return split_lines(text)


class Translator:
    """A trained run folder, ready to translate: `Translator.load("runs/x").translate(["Soy estudiante."])`."""

    def __init__(self, model, tok: Tokenizer, cfg: TranslationConfig, device: str | torch.device | None = None):
        self.device = pick_device(device)
        self.model, self.tok, self.cfg = model.eval().to(self.device), tok, cfg

    @classmethod
    def load(cls, run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = None) -> "Translator":
        run = open_run(run_dir, checkpoint, ("translate-transformer", "translate-rnn"), "a translation")
        cfg = run.config(TranslateTransformerConfig if run.task == "translate-transformer" else TranslateRNNConfig)
        return cls(run.load_weights(build_model(cfg)), Tokenizer.load(run.file("tokenizer.json")), cfg, device)

    def __call__(self, texts: str | list[str], beam: int = 4) -> str | list[str]:
        """One text -> its translation; a list -> one each (as `translate`)."""
        return self.translate([texts], beam)[0] if isinstance(texts, str) else self.translate(texts, beam)

    def encode(self, text: str) -> tuple[Tensor, bool]:
        """Text -> source ids ending in EOS, and whether it had to be truncated to the model's max_len."""
        ids = self.tok.encode(text)
        limit = self.cfg.model.max_len - 2
        return torch.tensor(ids[:limit] + [self.tok.eos_id]), len(ids) > limit

    def translate(self, texts: list[str], beam: int = 4, alpha: float | None = None) -> list[str]:
        """Empty (or blank) lines translate to empty lines; over-long lines are truncated with a warning."""
        results = [""] * len(texts)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        sources = []
        for i in todo:
            ids, cut = self.encode(texts[i])
            if cut:
                print(f"warning: line {i + 1} is longer than {self.cfg.model.max_len - 2} tokens; translating its start only",
                      file=sys.stderr)
            sources.append(ids)
        alpha = self.cfg.data.length_penalty if alpha is None else alpha
        outs = translate_ids(self.model, sources, self.tok.pad_id, beam=beam, alpha=alpha, max_len=self.cfg.model.max_len - 1)
        for i, out in zip(todo, outs):
            results[i] = self.tok.decode(out)
        return results

    def attention(self, text: str, translation: str) -> tuple[list[str], list[str], Tensor]:
        """Source tokens, target tokens and the attention (L, H, T, S) of `translation` given `text`."""
        src, _ = self.encode(text)
        tgt_ids = self.tok.encode(translation) + [self.tok.eos_id]
        tgt_in = torch.tensor([[self.tok.bos_id] + tgt_ids[:-1]])
        maps = self.model.attention_maps(src[None].to(self.device), tgt_in.to(self.device))[:, 0].cpu()  # (L, H, T, S)
        return self.tok.tokens(src.tolist()), self.tok.tokens(tgt_ids), maps

