"""Spanish corpus preparation on small fixtures in the packages' real formats; no network, no apt."""

import json
import shutil
from pathlib import Path

import pytest

from nanofm.cli import main
from nanofm.data.corpus import Document, prepare_corpus, read_corpus, read_inputs, split_and_dedup, valid_share
from nanofm.data.sources import fortunes, manpages

FIXTURES = Path(__file__).parents[1] / "fixtures" / "spanish"


def test_strip_roff_macros_escapes_comments_tables():
    pages = manpages.read_manpages(FIXTURES / "man")
    assert sorted(pages) == ["man1/ls.1", "man5/last.5"]  # the .so redirection and the symlink are skipped
    ls = pages["man1/ls.1"]
    assert ls[:2] == ["NOMBRE", "ls - lista el contenido de un directorio"]
    assert "-a, --all" in ls and "no oculta las entradas que comienzan con ." in ls  # .TP tag on its own line
    last = pages["man5/last.5"]
    text = "\n".join(last)
    for markup in ("\\f", ".TS", "T{", "allbox", "comentario", "LINKSTYLE", "mso", ".sp"):
        assert markup not in text
    assert "AAAA-MM-DD hh:mm (se definen los segundo a 00)" in last  # a table row, cells joined
    assert "Use --help para “ayuda” y “más” - año ñandú \\." in last  # \-, \(lq, \*(lq, \[u00F1], \['u], \e
    assert "lee de archivo en lugar de /var/log/wtmp." in last
    assert ["línea uno", "línea dos"] == last[-2:]  # .nf keeps lines


def test_fortunes_parsing_and_attribution():
    cats = fortunes.read_fortunes(FIXTURES / "fortunes")
    assert sorted(cats) == ["informatica", "refranes"]  # .dat index and .u8 link skipped
    assert cats["refranes"][0] == "A año tuerto, el huerto."
    assert len(cats["refranes"]) == 6 and len(cats["informatica"]) == 3
    body, author = fortunes.split_attribution(cats["informatica"][0])
    assert body.endswith("tampoco.") and author.strip().startswith("-- Bill Gates")
    assert fortunes.parse_fortunes("uno\n%\n%\n dos \n%") == ["uno", " dos"]


def test_split_is_by_document_and_dedups():
    docs = [Document("input", f"d{i}", f"línea {i}\ncomún") for i in range(200)]
    docs.append(Document("input", "copy", "línea 1\ncomún"))  # a duplicate of d1
    splits, dropped = split_and_dedup(docs, 0.1)
    ids = {s: {d.id for d in v} for s, v in splits.items()}
    assert ids["train"].isdisjoint(ids["valid"]) and 5 < len(ids["valid"]) < 40
    assert all((valid_share(f"input:{i}") < 0.1) == (i in ids["valid"]) for i in ids["train"] | ids["valid"])
    lines = [line for v in splits.values() for d in v for line in d.text.split("\n")]
    assert len(lines) == len(set(lines)) and lines.count("común") == 1  # each line once, valid first
    assert dropped["duplicate or empty documents"] == 1


def test_read_inputs_errors_name_the_file(tmp_path):
    (tmp_path / "vacío.txt").write_text("  \n")
    with pytest.raises(ValueError, match="vacío.txt: empty file"):
        read_inputs([tmp_path / "vacío.txt"])
    (tmp_path / "latin1.txt").write_bytes("año".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt:1: not valid UTF-8"):
        read_inputs([tmp_path / "latin1.txt"])
    with pytest.raises(ValueError, match="nada: no such file"):
        read_inputs([tmp_path / "nada"])
    blocks = read_inputs([FIXTURES / "input/cuento.txt"], blocks=True)
    assert [d.text.split("\n")[0][:9] for d in blocks] == ["Érase una", "Un día en"]
    assert "vivía en la montaña" in blocks[0].text  # whitespace normalised


def test_cli_corpus_end_to_end_is_deterministic(tmp_path, capsys):
    outs = []
    moved = tmp_path / "elsewhere" / "input"  # the same files in another place: the same split
    shutil.copytree(FIXTURES / "input", moved)
    for run, source in (("a", FIXTURES / "input"), ("b", moved)):
        out = tmp_path / run
        rc = main(["data", "prepare", "corpus", "--input", str(source), "--blocks",
                   "--valid-fraction", "0.4", "--vocab-size", "120", "--out", str(out)])
        assert rc == 0
        stats = json.loads((out / "stats.json").read_text())
        stats.pop("tokenizer")  # its trainer breaks ties in hash order: even its size may differ by an entry
        outs.append({"stats": stats, **{f: (out / f).read_bytes() for f in ("train.txt", "valid.txt")}})
        assert (out / "tokenizer.json").is_file() and (out / "vocab.txt").is_file()
    assert outs[0] == outs[1]  # (the tokenizer trainer breaks frequency ties in hash order: not compared)
    printed = capsys.readouterr().out
    assert "input" in printed and "total" in printed and "wrote" in printed
    train, valid = read_corpus(tmp_path / "a/train.txt"), read_corpus(tmp_path / "a/valid.txt")
    assert len(train) + len(valid) == 4  # 5 blocks, one a copy of another
    assert set(train).isdisjoint(valid)
    vocab = (tmp_path / "a/vocab.txt").read_text(encoding="utf-8").split()
    seen = (tmp_path / "a/train.txt").read_text(encoding="utf-8")
    for ch in "ñíáó":  # cased, accents and ñ kept (which documents are held out depends on the input's path)
        assert ch not in seen or any(ch in v for v in vocab), ch


def test_cli_corpus_bad_input_is_an_error(tmp_path, capsys):
    (tmp_path / "mal.txt").write_bytes(b"\xff\xfe texto")
    assert main(["data", "prepare", "corpus", "--input", str(tmp_path / "mal.txt"), "--out", str(tmp_path / "o")]) == 1
    assert "mal.txt:1: not valid UTF-8" in capsys.readouterr().err


def test_prepare_corpus_from_debian_cache(tmp_path):
    """The man page and fortune readers through prepare_corpus, from a cache laid out like dpkg-deb -x."""
    cache = tmp_path / "cache"
    shutil.copytree(FIXTURES / "man", cache / "manpages-es/usr/share/man/es", symlinks=True)
    shutil.copytree(FIXTURES / "fortunes", cache / "fortunes-es/usr/share/games/fortunes/es", symlinks=True)
    stats = prepare_corpus(tmp_path / "out", sources=("manpages", "fortunes"), cache_dir=cache, log=lambda s: None)
    assert stats["splits"]["train"]["documents"] + stats["splits"]["valid"]["documents"] == 2 + 9
    assert stats["sources"]["manpages"]["train"]["words"] + stats["sources"]["manpages"]["valid"]["words"] > 50
    assert stats["tokenizer"]["kind"] == "wordpiece-cased"  # by default, as `nanofm data prepare corpus`
    assert (tmp_path / "out/tokenizer.json").is_file() and (tmp_path / "out/vocab.txt").is_file()
