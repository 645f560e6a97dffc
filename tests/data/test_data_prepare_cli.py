"""`nanofm data prepare translation` and `nanofm data prepare beto-tasks` end to end through the CLI, offline: the
Debian packages come from a package cache filled with the fixture packages (as `dpkg-deb -x` leaves them), and
apt is never asked. The silver (spaCy) tasks are only checked to fail clearly without spaCy. Also split_by_label
with counts worked out by hand."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from nanofm.cli import main
from nanofm.data.sources import debian
from nanofm.data.spanish_tasks import Example, load_task, read_classification, split_by_label
from nanofm.data.translation import read_tsv
from tests.data.test_translation_data import FIXTURES, _verses, _write_ztext

SPANISH = Path(__file__).parents[1] / "fixtures" / "spanish"


@pytest.fixture
def cache(tmp_path) -> Path:
    """The fixture packages (LibreOffice help es / en-US, both Bibles, fortunes-es) in a package cache."""
    root = tmp_path / "cache"
    shutil.copytree(FIXTURES / "debian", root)
    _write_ztext(root / "sword-text-sparv/usr/share/sword", _verses("es"), "kjv")
    _write_ztext(root / "sword-text-web/usr/share/sword", _verses("en"), "nrsva")
    shutil.copytree(SPANISH / "fortunes", root / "fortunes-es/usr/share/games/fortunes/es", symlinks=True)
    return root


# ---------------------------------------------------------------- translation


def test_data_prepare_translation_cli(cache, tmp_path, capsys):
    out = tmp_path / "es-en"
    assert main(["data", "prepare", "translation", "--pair", "es-en", "--out", str(out), "--cache", str(cache)]) == 0
    files = {s: read_tsv(out / f"{s}.tsv") for s in ("train", "valid", "test")}
    meta = json.loads((out / "meta.json").read_text())
    stdout = capsys.readouterr().out
    counts = ", ".join(f"{s} {len(p)}" for s, p in files.items())
    assert f"wrote {out}/train.tsv, valid.tsv, test.tsv ({counts} pairs) and meta.json" in stdout  # the files' own counts
    assert meta["pair"] == "es-en" and meta["sources"] == ["libreoffice", "bible"]
    assert meta["splits"] == {s: len(p) for s, p in files.items()} and len(files["train"]) > 0
    assert set(meta["packages"]) == {"libreoffice-help-es", "libreoffice-help-en-us", "sword-text-sparv", "sword-text-web"}
    pairs = {p for split in files.values() for p in split}
    # known pairs of the fixtures, each aligned across languages: a verse (by reference) and a help paragraph (by id)
    assert ("EN el principio crió Dios los cielos y la tierra.",  # Gen 1:1 of both Bibles, markup stripped
            "In the beginning, God created the heavens and the earth.") in pairs
    assert ("Contiene los módulos de idioma instalados.",  # par_id3156343 of shared/optionen/01010400.html
            "Contains the installed language modules.") in pairs
    assert all(src != tgt for src, tgt in pairs)  # untranslated paragraphs are dropped
    srcs = {s: {a for a, _ in p} for s, p in files.items()}
    assert not srcs["train"] & (srcs["valid"] | srcs["test"]) and not srcs["valid"] & srcs["test"]


def test_data_prepare_translation_cli_without_the_packages_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.undo()  # the real download path, on a machine without apt-get
    monkeypatch.setattr(debian.shutil, "which", lambda tool: None)
    code = main(["data", "prepare", "translation", "--pair", "fr-en", "--out", str(tmp_path / "fr"),
                 "--cache", str(tmp_path / "empty")])
    err = capsys.readouterr().err
    assert code != 0 and not (tmp_path / "fr").exists()
    assert "libreoffice-help-fr" in err and "apt-get install libreoffice-help-en-us libreoffice-help-fr" in err


# ---------------------------------------------------------------- the Spanish tasks, gold only


def test_data_prepare_beto_tasks_gold_only_cli(cache, tmp_path):
    from nanofm.data.sources import fortunes, libreoffice
    from nanofm.data.spanish_tasks import AREAS

    out = tmp_path / "tasks"
    assert main(["data", "prepare", "beto-tasks", "--tasks", "libreoffice-area,fortunes-category", "--out", str(out),
                 "--cache", str(cache)]) == 0
    index = json.loads((out / "tasks.json").read_text())
    assert set(index) == {"libreoffice-area", "fortunes-category"}

    # every example is a fixture paragraph with the area of ITS page (text/<area>/...), or a fortune with its file
    pages = libreoffice.read_help(cache / "libreoffice-help-es/usr/share/libreoffice/help/es")
    area_of = {}
    for page, units in pages.items():
        for _, text in units:
            area_of.setdefault(text, set()).add(AREAS[page.split("/")[1]])
    cats = fortunes.read_fortunes(cache / "fortunes-es" / fortunes.FORTUNE_DIRS["es"])
    for name, truth in (("libreoffice-area", area_of), ("fortunes-category", None)):
        task = load_task(out / name)
        meta = json.loads((out / name / "task.json").read_text())
        assert task.kind == "classification" and task.metric == "accuracy" and not task.silver
        splits = {s: read_classification(out / name / f"{s}.tsv") for s in ("train", "dev", "test")}
        assert meta["sizes"] == index[name]["sizes"] == {s: len(v) for s, v in splits.items()}
        assert meta["labels"] == sorted({ex.label for v in splits.values() for ex in v})
        texts = [ex.text for v in splits.values() for ex in v]
        assert len(texts) == len(set(texts)) > 0  # each text once: nothing leaks between splits
        for ex in (ex for v in splits.values() for ex in v):
            if truth is not None:
                assert truth[ex.text] == {ex.label}, ex
                assert len(ex.text.split()) >= 4
            else:
                assert any(ex.text in " ".join(entry.split()) for entry in cats[ex.label]), ex
    assert set(json.loads((out / "fortunes-category/task.json").read_text())["labels"]) <= set(cats)
    assert {"shared", "Writer"} >= set(index["libreoffice-area"]["labels"])


def test_data_prepare_beto_tasks_silver_without_spacy_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)  # spaCy absent (import fails), whether installed here or not
    code = main(["data", "prepare", "beto-tasks", "--tasks", "pos-silver", "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "need spaCy" in err and "--tasks libreoffice-area,fortunes-category" in err
    assert not (tmp_path / "t").exists()  # failed before any work


# ---------------------------------------------------------------- split_by_label


def test_split_by_label_gives_every_label_its_share():
    """Label A: 20 one-example groups (plus a repeated text in a 21st); label B: 10 groups, one of them of 3
    examples. assign_groups' rule (groups in hash order, each to test, else dev, when that brings the split
    nearer 10% of the label's examples), worked out by hand: A (20 examples, aims 2 and 2) 16 / 2 / 2; B (12
    examples, aims 1.2 and 1.2) one single-example group to test, one to dev, and the 3-example group never
    (|3 - 1.2| > 1.2): 10 / 1 / 1, the big group in train. A split over all labels at once gives other counts
    (it can leave B no dev or test example); a group straddling splits, or the repeated text kept, fails too."""
    items = [(f"a{i:02d}", Example(f"texto a {i}", "A")) for i in range(20)]
    items.append(("a-repeat", Example("texto a 3", "A")))  # the same text again: dropped
    items += [(f"b{i:02d}", Example(f"texto b {i}", "B")) for i in range(9)]
    items += [("b-big", Example(f"texto grande {k}", "B")) for k in range(3)]
    splits = split_by_label(items)
    count = {(s, lab): sum(ex.label == lab for ex in v) for s, v in splits.items() for lab in "AB"}
    assert (count["train", "A"], count["dev", "A"], count["test", "A"]) == (16, 2, 2)
    assert (count["train", "B"], count["dev", "B"], count["test", "B"]) == (10, 1, 1)
    where = {ex.text: s for s, v in splits.items() for ex in v}
    assert len(where) == sum(len(v) for v in splits.values()) == 32  # 33 items, the repeated text once
    assert {where[f"texto grande {k}"] for k in range(3)} == {"train"}  # a group stays whole
