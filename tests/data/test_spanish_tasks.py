"""The offline Spanish task suite: file formats, loaders and split logic, on fixtures; no spaCy needed."""

from pathlib import Path

import pytest

from nanofm.data.sources import fortunes, libreoffice
from nanofm.data.spanish_tasks import (
    Example, TaggedSentence, fortune_examples, libreoffice_examples, load_task, read_classification,
    read_tagged, split_grouped, write_classification, write_tagged,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "spanish"
HELP_ES = Path(__file__).parent / "fixtures/debian/libreoffice-help-es/usr/share/libreoffice/help/es"


def test_load_task_fixtures():
    pos = load_task(FIXTURES / "tasks/pos-silver")
    assert pos.kind == "tagging" and pos.silver and len(pos.splits["train"]) == 2
    assert pos.splits["train"][0] == TaggedSentence(["El", "Señor", "habló", "."], ["DET", "PROPN", "VERB", "PUNCT"])
    assert pos.splits["test"] == [TaggedSentence(["Año", "nuevo"], ["NOUN", "ADJ"])]  # no final blank line
    assert pos.labels == ["DET", "NOUN", "PROPN", "PUNCT", "VERB"]
    area = load_task(FIXTURES / "tasks/area")
    assert area.kind == "classification" and area.metric == "accuracy" and not area.silver
    assert area.splits["dev"] == [Example("Escriba la fórmula en el editor.", "Math")]


def test_malformed_lines_name_file_and_line(tmp_path):
    bad = tmp_path / "train.tsv"
    bad.write_text("El\tDET\nSeñor PROPN\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train.tsv:2: expected 2 tab-separated fields, got 1"):
        read_tagged(bad)
    bad.write_text("Calc\tuno\n\tsin etiqueta\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train.tsv:2: empty field"):
        read_classification(bad)
    bad.write_bytes(b"Calc\tbien\nCalc\tmal \xff\n")
    with pytest.raises(ValueError, match=r"train.tsv:2: not valid UTF-8"):
        read_classification(bad)
    with pytest.raises(ValueError, match="task.json: missing"):
        load_task(tmp_path)


def test_writers_round_trip(tmp_path):
    sents = [TaggedSentence(["Moisés", "subió"], ["B-PER", "O"]), TaggedSentence(["Sí"], ["O"])]
    write_tagged(tmp_path / "t.tsv", sents)
    assert read_tagged(tmp_path / "t.tsv") == sents
    exs = [Example("Abra el menú Archivo.", "shared")]
    write_classification(tmp_path / "c.tsv", exs)
    assert read_classification(tmp_path / "c.tsv") == exs
    with pytest.raises(ValueError):
        write_classification(tmp_path / "c.tsv", [Example("dos\tcampos", "x")])


def test_split_grouped_holds_out_whole_groups_without_leaks():
    items = [(f"page{g}", Example(f"texto {g}-{i}" if i else "común", "A")) for g in range(60) for i in range(4)]
    splits = split_grouped(items, key=lambda ex: ex.text)
    groups = {s: {ex.text.split()[-1].split("-")[0] for ex in v if ex.text != "común"} for s, v in splits.items()}
    assert groups["train"].isdisjoint(groups["dev"]) and groups["train"].isdisjoint(groups["test"])
    assert groups["dev"] and groups["test"]
    assert sum(ex.text == "común" for v in splits.values() for ex in v) == 1
    again = split_grouped(list(reversed(items)), key=lambda ex: ex.text)
    assert {s: set(v) for s, v in again.items()} == {s: set(v) for s, v in splits.items()}  # input order: same splits


def test_gold_examples_from_fixture_packages():
    pages = libreoffice.read_help(HELP_ES)
    exs = libreoffice_examples(pages)
    assert exs and {ex.label for _, ex in exs} <= {"shared", "Writer"}
    assert all(len(ex.text.split()) >= 4 for _, ex in exs)
    fx = fortune_examples(fortunes.read_fortunes(FIXTURES / "fortunes"))
    assert ("informatica/0", Example("Todo lo que no tiene solución no se soluciona, y lo que la tiene tampoco.", "informatica")) in fx
