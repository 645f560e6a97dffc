"""Readers for the real BETO benchmarks' files (CoNLL-2002, CoNLL-U, MLDoc, PAWS-X, XNLI), on small fixtures
in each format, and load_task on folders that name them."""

import json
from pathlib import Path

import pytest

from nanofm.data.benchmark_formats import read_conll2002, read_conllu, read_mldoc, read_pawsx, read_xnli
from nanofm.data.spanish_tasks import Example, TaggedSentence, load_task

FIXTURES = Path(__file__).parents[1] / "fixtures" / "benchmark-formats"


def test_conll2002():
    sents = read_conll2002(FIXTURES / "conll2002/esp.train")  # -DOCSTART- skipped
    assert [len(s.words) for s in sents] == [11, 9, 9]
    assert sents[0].words[:3] == ["Melbourne", "(", "Australia"] and sents[0].tags[:3] == ["B-LOC", "O", "B-LOC"]
    assert sents[1] == TaggedSentence(["El", "presidente", "José", "María", "Aznar", "visitó", "San", "Sebastián", "."],
                                      ["O", "O", "B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"])
    assert read_conll2002(FIXTURES / "conll2002/esp.testb") == [TaggedSentence(
        ["El", "Real", "Madrid", "ganó", "en", "Barcelona", "."], ["O", "B-ORG", "I-ORG", "O", "O", "B-LOC", "O"])]


def test_conll2002_tag_is_the_last_column(tmp_path):
    f = tmp_path / "esp.train"
    f.write_text("Melbourne NP B-LOC\n( Fpa O\n", encoding="utf-8")  # NLTK's copy has a POS column
    assert read_conll2002(f) == [TaggedSentence(["Melbourne", "("], ["B-LOC", "O"])]


def test_conllu():
    sents = read_conllu(FIXTURES / "conllu/es_ancora-ud-train.conllu")  # comments, 1-2 "Del" and 5.1 skipped
    assert sents == [
        TaggedSentence(["De", "el", "dicho", "a", "el", "hecho", "hay", "mucho", "trecho", "."],
                       ["ADP", "DET", "NOUN", "ADP", "DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]),
        TaggedSentence(["Juan", "come", "manzanas", "y", "María", "peras", "."],
                       ["PROPN", "VERB", "NOUN", "CCONJ", "PROPN", "NOUN", "PUNCT"]),
    ]


def test_mldoc():
    exs = read_mldoc(FIXTURES / "mldoc/spanish.train.1000")
    assert [ex.label for ex in exs] == ["CCAT", "ECAT", "GCAT", "MCAT"]
    assert exs[1] == Example("La inflación subió dos décimas en marzo.", "ECAT")


def test_pawsx_pairs_without_missing_translations():
    assert read_pawsx(FIXTURES / "pawsx/translated_train.tsv") == [  # row 3 has empty sentences
        Example("La casa es roja y grande.", "1", "La casa es grande y roja."),
        Example("Juan vio a María en Madrid.", "0", "María vio a Juan en Madrid."),
    ]
    assert read_pawsx(FIXTURES / "pawsx/dev_2k.tsv") == [  # row 2's sentence2 is the placeholder NS
        Example("El río pasa por la ciudad.", "1", "La ciudad está junto al río.")]


def test_xnli_mt_train_and_spanish_rows_of_dev_test():
    train = read_xnli(FIXTURES / "xnli/multinli.train.es.tsv")
    assert [ex.label for ex in train] == ["entailment", "contradiction", "neutral"]  # "contradictory" normalised
    assert train[0] == Example("El perro duerme en el sofá.", "entailment", "Un animal descansa.")
    assert read_xnli(FIXTURES / "xnli/xnli.dev.tsv") == [  # the "en" row left out
        Example("Él volvió.", "neutral", "Él estaba cansado."),
        Example("Llueve en Bilbao.", "contradiction", "Hace sol en Bilbao."),
    ]
    assert read_xnli(FIXTURES / "xnli/xnli.test.tsv") == [Example("Ella compró pan.", "entailment", "Ella compró algo.")]


@pytest.mark.parametrize("fmt, kind, metric, labels, sizes", [
    ("conll2002", "tagging", "entity_f1", ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"], (3, 2, 1)),
    ("conllu", "tagging", "accuracy", ["ADP", "CCONJ", "DET", "NOUN", "PROPN", "PUNCT", "VERB"], (2, 1, 1)),
    ("mldoc", "classification", "accuracy", ["CCAT", "ECAT", "GCAT", "MCAT"], (4, 1, 2)),
    ("pawsx", "classification", "accuracy", ["0", "1"], (2, 1, 1)),
    ("xnli", "classification", "accuracy", ["contradiction", "entailment", "neutral"], (3, 2, 1)),
])
def test_load_task_on_each_format(fmt, kind, metric, labels, sizes):
    task = load_task(FIXTURES / fmt)  # task.json: only "format" and "files"
    assert (task.name, task.kind, task.metric, task.labels) == (fmt, kind, metric, labels)
    assert tuple(len(task.splits[s]) for s in ("train", "dev", "test")) == sizes


def test_load_task_format_errors(tmp_path):
    (tmp_path / "task.json").write_text(json.dumps({"format": "conll2003"}))
    with pytest.raises(ValueError, match=r"task.json: \"format\" must be one of \['tsv', 'conll2002', 'conllu', 'mldoc', 'pawsx', 'xnli'\]"):
        load_task(tmp_path)
    (tmp_path / "task.json").write_text(json.dumps({"format": "conllu", "kind": "classification"}))
    with pytest.raises(ValueError, match=r"task.json: \"kind\" must be \"tagging\" \(format conllu\)"):
        load_task(tmp_path)
    (tmp_path / "task.json").write_text(json.dumps({"format": "conll2002", "files": {"train": "esp.train"}}))
    with pytest.raises(ValueError, match=r"esp.train: missing \(the train split"):
        load_task(tmp_path)
    (tmp_path / "task.json").write_text(json.dumps({"format": "conll2002", "files": {"valid": "esp.testa"}}))
    with pytest.raises(ValueError, match=r"task.json: \"files\" must map splits"):
        load_task(tmp_path)


@pytest.mark.parametrize("reader, name, text, error", [
    (read_conll2002, "esp.train", "Melbourne B-LOC\n(\n", r"esp.train:2: expected a word and a tag \(space-separated\), got '\('"),
    (read_conll2002, "esp.train", "Melbourne B-LOC\n( NP\n", r"esp.train:2: expected a BIO tag \(O, B-TYPE, I-TYPE\) last, got 'NP'"),
    (read_conllu, "ud.conllu", "# text = Hola.\n1\tHola\thola\tINTJ\t_\t_\t0\troot\t_\t_\n2 . . PUNCT\n",
     r"ud.conllu:3: expected 10 tab-separated columns \(CoNLL-U\), got 1"),
    (read_mldoc, "spanish.dev", "CCAT\tUna empresa.\nUna empresa.\tCCAT\n", r"spanish.dev:2: expected a label CCAT, ECAT, GCAT, MCAT first"),
    (read_mldoc, "spanish.dev", "CCAT\tUna empresa.\nCCAT Una empresa.\n", r"spanish.dev:2: expected 2 tab-separated fields, got 1"),
    (read_pawsx, "dev_2k.tsv", "1\tUna.\tOtra.\t1\n", r"dev_2k.tsv:1: expected a header naming id, sentence1, sentence2, label"),
    (read_pawsx, "dev_2k.tsv", "id\tsentence1\tsentence2\tlabel\n1\tUna.\tOtra.\n", r"dev_2k.tsv:2: expected 4 tab-separated fields"),
    (read_pawsx, "dev_2k.tsv", "id\tsentence1\tsentence2\tlabel\n\n1\tUna.\tOtra.\tsí\n", r"dev_2k.tsv:3: expected a label 0 or 1, got 'sí'"),
    (read_xnli, "xnli.dev.tsv", "language\tgold_label\tsentence1\tsentence2\nes\tquizás\tUna.\tOtra.\n",
     r"xnli.dev.tsv:2: expected a label contradiction or entailment or neutral, got 'quizás'"),
    (read_xnli, "xnli.dev.tsv", "language\tsentence1\tsentence2\n", r"xnli.dev.tsv:1: expected a header naming language, gold_label"),
    (read_xnli, "train.tsv", "premise\thypo\tlabel\nUna.\tOtra.\tneutral\textra\n", r"train.tsv:2: expected 3 tab-separated fields"),
])
def test_malformed_line_names_file_and_line(tmp_path, reader, name, text, error):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=error):
        reader(tmp_path / name)


def test_invalid_utf8_names_the_line(tmp_path):
    (tmp_path / "esp.train").write_bytes(b"Melbourne B-LOC\nEspa\xf1a B-LOC\n")  # Latin-1, as on the CoNLL-2002 site
    with pytest.raises(ValueError, match=r"esp.train:2: not valid UTF-8"):
        read_conll2002(tmp_path / "esp.train")
