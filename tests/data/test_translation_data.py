"""Translation data preparation on small fixtures in the packages' real formats; no network, no apt."""

import gzip
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from nanofm.data.sources import AlignedPair, bible, debian, libreoffice
from nanofm.data.translation import (
    assign_groups,
    dedup_and_unleak,
    filter_pairs,
    prepare_translation,
    read_tsv,
    write_tsv,
)

FIXTURES = Path(__file__).parent / "fixtures"
HELP = "usr/share/libreoffice/help"


def _verses(lang: str) -> dict[tuple[str, int, int], str]:
    """Raw OSIS verses copied from sword-text-sparv / sword-text-web, keyed by reference."""
    raw = json.loads((FIXTURES / "bible_verses.json").read_text(encoding="utf-8"))[lang]
    out = {}
    for ref, text in raw.items():
        book, ch, v = re.fullmatch(r"(\S+) (\d+):(\d+)", ref).groups()
        out[book, int(ch), int(v)] = text
    return out


def _write_ztext(sword_root: Path, verses: dict, versification: str) -> None:
    """Write the zText files (BlockType=BOOK, CompressType=ZIP) next to the fixture's real .conf:
    per testament a zlib block (.bzz), its block index (.bzs: offset, size, uncompressed size as
    <III) and the verse index (.bzv: block, start, length as <IIH per verse slot)."""
    from pysword.books import BibleStructure

    conf = next((sword_root / "mods.d").glob("*.conf")).read_text(encoding="utf-8")
    data_path = re.search(r"^DataPath=\./(.*)$", conf, re.M).group(1)
    module_dir = sword_root / data_path
    module_dir.mkdir(parents=True)
    structure = BibleStructure(versification)
    slots: dict[str, dict[int, bytes]] = {}
    for (book, ch, v), text in verses.items():
        for testament, idxs in structure.ref_to_indicies(books=book, chapters=ch, verses=v).items():
            slots.setdefault(testament, {})[idxs[0]] = text.encode("utf-8")
    for testament, texts in slots.items():
        blob, records = b"", {}
        for idx in sorted(texts):
            records[idx] = (0, len(blob), len(texts[idx]))
            blob += texts[idx]
        block = zlib.compress(blob)
        (module_dir / f"{testament}.bzz").write_bytes(block)
        (module_dir / f"{testament}.bzs").write_bytes(struct.pack("<III", 0, len(block), len(blob)))
        index = b"".join(struct.pack("<IIH", *records.get(i, (0, 0, 0))) for i in range(max(records) + 1))
        (module_dir / f"{testament}.bzv").write_bytes(index)


@pytest.fixture
def cache(tmp_path) -> Path:
    """A package cache holding the fixture packages as if extracted by dpkg-deb, Bibles included."""
    root = tmp_path / "cache"
    shutil.copytree(FIXTURES / "debian", root)
    if _has_pysword():
        _write_ztext(root / "sword-text-sparv/usr/share/sword", _verses("es"), "kjv")
        _write_ztext(root / "sword-text-web/usr/share/sword", _verses("en"), "nrsva")
    return root


def _has_pysword() -> bool:
    try:
        import pysword  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- LibreOffice help


def test_page_units_strip_markup_and_pick_the_default_switch_variant():
    page = FIXTURES / "debian/libreoffice-help-en-us" / HELP / "en-US/text/shared/find_toolbar.html"
    units = dict(libreoffice.page_units(page.read_text(encoding="utf-8")))
    assert list(units)[:3] == ["hd_id701641581066778", "par_id3147762", "par_id211641581251728"]
    assert units["par_id3147762"] == (
        "The Find toolbar can be used to quickly search the contents of LibreOffice documents.")
    assert units["par_id211641581251728"] == (
        "Use the shortcut Ctrl + F to quickly open the Find toolbar.")  # the default variant, not Command
    assert units["par_id851642423451259"] == ""  # an icon only
    assert "bm_module" not in units  # ids that are not text units


def test_libreoffice_pairs_are_aligned_by_page_and_id(cache):
    pairs = libreoffice.load_pairs(cache / "libreoffice-help-es", cache / "libreoffice-help-en-us", "es", "en")
    by_key = {(p.group, p.key.split("#")[0]): (p.src, p.tgt) for p in pairs}
    assert by_key["text/shared/00/00000406.html", "par_id3147330"] == (
        "Vaya a Herramientas ▸ Opciones ▸ LibreOffice ▸ Rutas.", "Choose Tools - Options - LibreOffice - Paths.")
    assert by_key["text/swriter/01/mm_seltab.html", "par_idN10546"] == (
        "Seleccione la tabla que desea utilizar para direcciones de combinar correspondencia.",
        "Select the table that you want to use for mail merge addresses.")
    ids = {key for _, key in by_key}
    assert "par_id3149000" not in ids  # only in the Spanish page
    assert "par_id3156188" not in ids  # a code sample
    assert {p.group for p in pairs} == {
        "text/shared/00/00000406.html", "text/shared/optionen/01010400.html",
        "text/swriter/01/mm_seltab.html", "text/shared/find_toolbar.html"}


def test_ids_occurring_a_different_number_of_times_are_skipped():
    src = {"p.html": [("par_id1", "uno"), ("par_id2", "dos"), ("par_id2", "dos otra vez"), ("par_id3", "tres")]}
    tgt = {"p.html": [("par_id1", "one"), ("par_id2", "two"), ("par_id3", "three"), ("par_id3", "three again")],
           "only_en.html": [("par_id1", "one")]}
    pairs = libreoffice.align_pages(src, tgt)
    assert [(p.src, p.tgt) for p in pairs] == [("uno", "one")]


# ---------------------------------------------------------------- Bible


def _words(n: int, word: str) -> str:
    return " ".join([word] * n)


def test_verses_are_aligned_by_reference_not_position():
    # The target has a book the source lacks (the deuterocanon) and a verse slot the source lacks:
    # by position everything after it would be off by one; by reference it is not.
    src = {("Gen", 1, 1): "En el principio", ("Gen", 1, 2): "Y la tierra", ("Mal", 1, 1): "Carga de Jehová",
           ("Matt", 1, 1): "Libro de la generación"}
    tgt = {("Gen", 1, 1): "In the beginning", ("Gen", 1, 2): "The earth", ("Tob", 1, 1): "The book of Tobit",
           ("Mal", 1, 1): "A revelation", ("Matt", 1, 1): "The book of the genealogy", ("Matt", 1, 2): "Abraham"}
    pairs, report = bible.align_verses(src, tgt)
    assert [(p.key, p.src, p.tgt) for p in pairs] == [
        ("Gen.1.1", "En el principio", "In the beginning"), ("Gen.1.2", "Y la tierra", "The earth"),
        ("Mal.1.1", "Carga de Jehová", "A revelation")]
    assert report["excluded_chapters"] == {"Matt.1": "empty"}  # Matt 1:2 missing from the source's versification
    assert [p.group for p in pairs] == ["Gen", "Gen", "Mal"]


def test_a_renumbered_chapter_is_excluded():
    lengths = [3, 25, 7, 18, 4, 30, 9, 14, 5, 22, 11, 6]
    src = {("Jonah", 2, v): _words(n, "palabra") for v, n in enumerate(lengths, 1)}
    tgt = {("Jonah", 2, v): _words(n, "word") for v, n in enumerate([20] + lengths[:-1], 1)}  # shifted by one
    src |= {("Gen", 1, v): _words(n, "palabra") for v, n in enumerate(lengths, 1)}
    tgt |= {("Gen", 1, v): _words(n, "word") for v, n in enumerate(lengths, 1)}
    pairs, report = bible.align_verses(src, tgt)
    assert report["excluded_chapters"] == {"Jonah.2": "shifted"}
    assert {p.group for p in pairs} == {"Gen"} and len(pairs) == len(lengths)


def test_real_verses_markup_and_the_jonah_versification_difference():
    es = {r: bible.clean_osis(t) for r, t in _verses("es").items()}
    en = {r: bible.clean_osis(t) for r, t in _verses("en").items()}
    assert en["Gen", 1, 1] == "In the beginning, God created the heavens and the earth."  # footnote dropped
    assert es["Gen", 1, 1] == "EN el principio crió Dios los cielos y la tierra."
    assert en["Ps", 3, 1].startswith("A Psalm by David, when he fled from Absalom his son. Yahweh")  # canonical title
    assert es["Ps", 3, 1].startswith("Salmo de David, cuando huía de delante de Absalom su hijo.")
    # RV1909 numbers Jonah like the Hebrew: its 2:1 is the WEB's 1:17 (the great fish), its 1:17 slot is empty.
    assert es.get(("Jonah", 1, 17), "") == "" and "pez" in es["Jonah", 2, 1] and "fish" in en["Jonah", 1, 17]
    pairs, report = bible.align_verses(es, en)
    assert report["excluded_chapters"] == {"Jonah.1": "empty", "Jonah.2": "shifted"}
    assert {p.group for p in pairs} == {"Gen", "Ps", "Matt", "3John"}
    assert all(p.key != "3John.1.15" for p in pairs)


def test_read_module_from_a_tiny_ztext_module(cache):
    pytest.importorskip("pysword")
    es = bible.read_module(cache / "sword-text-sparv/usr/share/sword", "spaRV1909eb")
    en = bible.read_module(cache / "sword-text-web/usr/share/sword", "engWEB2015eb")
    assert es["Gen", 1, 1] == "EN el principio crió Dios los cielos y la tierra."
    assert en["Gen", 1, 1] == "In the beginning, God created the heavens and the earth."
    assert es["Jonah", 1, 17] == "" and en["Jonah", 1, 17].startswith("Yahweh prepared a huge fish")
    assert ("Tob", 1, 1) in en and ("Tob", 1, 1) not in es  # NRSVA versification has the deuterocanon
    assert list(es)[:2] == [("Gen", 1, 1), ("Gen", 1, 2)] and len(es) == 31102  # every KJV slot, in order
    with pytest.raises(FileNotFoundError, match="spaRV1909eb"):
        bible.read_module(cache / "sword-text-web/usr/share/sword", "spaRV1909eb")


# ---------------------------------------------------------------- filtering, dedup, splits


def _pair(src, tgt, group="g", origin="libreoffice"):
    return AlignedPair(origin, group, "k", src, tgt)


def test_filter_pairs_drops_empty_untranslated_too_long_and_unbalanced():
    pairs = [_pair("Hola mundo", "Hello world"), _pair("", "Empty"), _pair("LibreOffice", "LibreOffice"),
             _pair(_words(61, "a"), _words(61, "b")), _pair("uno", "one two three four"), _pair("uno", "one two three")]
    kept, dropped = filter_pairs(pairs, min_words=1, max_words=60, max_ratio=3.0)
    assert [p.src for p in kept] == ["Hola mundo", "uno"]
    assert dropped == {"empty": 1, "untranslated": 1, "length": 1, "ratio": 1}
    kept, dropped = filter_pairs(pairs[:1], min_words=3, max_words=60, max_ratio=3.0)
    assert kept == [] and dropped == {"length": 1}


def test_dedup_keeps_one_deterministic_target_and_removes_held_out_sources_from_train():
    splits = {
        "train": [_pair("Vista previa", "Preview"), _pair("Vista previa", "Print Preview"),
                  _pair("Vista previa", "Preview"), _pair("Abrir", "Open"), _pair("Abrir", "Open"),
                  _pair("Cerrar", "Close"), _pair("Guardar", "Save")],
        "valid": [_pair("Cerrar", "Close window"), _pair("Imprimir", "Print")],
        "test": [_pair("Guardar", "Save"), _pair("Imprimir", "Print"), _pair("Copiar", "Copy"),
                 _pair("Copiar", "Duplicate")],
    }
    out, dropped = dedup_and_unleak(splits)
    assert [(p.src, p.tgt) for p in out["train"]] == [("Vista previa", "Preview"), ("Abrir", "Open")]
    assert [(p.src, p.tgt) for p in out["valid"]] == [("Cerrar", "Close window")]
    assert [(p.src, p.tgt) for p in out["test"]] == [("Guardar", "Save"), ("Imprimir", "Print"), ("Copiar", "Copy")]
    assert dropped == {"duplicate": 4, "held-out source in valid": 1, "held-out source in train": 2}


def test_assign_groups_is_deterministic_disjoint_and_near_target():
    sizes = {f"text/page{i:03d}.html": 1 + (i * 7) % 40 for i in range(300)}
    a = assign_groups(sizes, valid_fraction=0.05, test_fraction=0.1)
    b = assign_groups(dict(reversed(list(sizes.items()))), valid_fraction=0.05, test_fraction=0.1)
    assert a == b and set(a) == set(sizes) and set(a.values()) == {"train", "valid", "test"}
    total = sum(sizes.values())
    for split, fraction in (("valid", 0.05), ("test", 0.1)):
        share = sum(n for g, n in sizes.items() if a[g] == split) / total
        assert abs(share - fraction) < 0.01


# ---------------------------------------------------------------- end to end


def test_prepare_translation_end_to_end(cache, tmp_path):
    pytest.importorskip("pysword")
    logs = []
    kw = dict(valid_fraction=0.2, test_fraction=0.2, log=logs.append)
    meta = prepare_translation("es-en", tmp_path / "a", cache, **kw)
    files = {s: read_tsv(tmp_path / "a" / f"{s}.tsv") for s in ("train", "valid", "test")}
    assert {s: len(p) for s, p in files.items()} == meta["splits"] == {s: meta["counts"][s]["total"] for s in files}
    assert all(meta["counts"][s][origin] > 0 for s in files for origin in ("libreoffice", "bible"))
    assert meta["dropped"]["held-out source in train"] > 0  # a paragraph shared by a train and a test page
    assert meta["sources"] == ["libreoffice", "bible"] and meta["packages"]["sword-text-web"] == "unknown"
    assert any(line.startswith("train:") for line in logs)

    # No page or book in two splits, and every pair comes from a group of its split.
    groups = {s: {g.split(":", 1)[1] for g in meta["held_out"][s]} for s in ("valid", "test")}
    assert not groups["valid"] & groups["test"]
    lo = libreoffice.load_pairs(cache / "libreoffice-help-es", cache / "libreoffice-help-en-us", "es", "en")
    bi, _ = bible.load_pairs(cache / "sword-text-sparv", cache / "sword-text-web", "es", "en")
    origin = {}
    for p in lo + bi:
        origin.setdefault((p.src, p.tgt), set()).add(p.group)
    for split, pairs in files.items():
        for pair in pairs:
            homes = origin[pair]
            held = homes & (groups["valid"] | groups["test"])
            assert homes & groups[split] if split != "train" else homes - held
    # No source sentence of valid or test in train, none of test in valid.
    src = {s: {a for a, _ in p} for s, p in files.items()}
    assert not src["train"] & (src["valid"] | src["test"]) and not src["valid"] & src["test"]
    # Deterministic: a second run gives byte-identical files.
    prepare_translation("es-en", tmp_path / "b", cache, **kw)
    for name in ("train.tsv", "valid.tsv", "test.tsv", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_prepare_translation_checks_its_arguments(cache, tmp_path):
    with pytest.raises(ValueError, match="unknown pair"):
        prepare_translation("de-en", tmp_path, cache, log=lambda _: None)
    with pytest.raises(ValueError, match="none of the sources"):
        prepare_translation("fr-en", tmp_path, cache, sources=("bible",), log=lambda _: None)


# ---------------------------------------------------------------- TSV


def test_tsv_round_trip_and_errors_name_file_and_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    pairs = [("¿Dónde está?", "Where is it?"), ("Ñandú", "Rhea")]
    write_tsv(path, pairs)
    assert read_tsv(path) == pairs
    with pytest.raises(ValueError, match="tab"):
        write_tsv(path, [("a\tb", "c")])
    for content, problem in [
        (b"uno\tone\ndos\n", "expected 2 tab-separated fields, got 1"),
        (b"uno\tone\ndos\ttwo\tthree\n", "expected 2 tab-separated fields, got 3"),
        (b"uno\tone\n\ttwo\n", "empty source field"),
        (b"uno\tone\ndos\xff\ttwo\n", "not valid UTF-8"),
    ]:
        path.write_bytes(content)
        with pytest.raises(ValueError) as err:
            read_tsv(path)
        assert str(err.value).startswith(f"{path}:2:") and problem in str(err.value)


# ---------------------------------------------------------------- Debian packages


def test_fetch_packages_reuses_the_cache_and_reads_versions(tmp_path):
    root = tmp_path / "cache/libreoffice-help-es"
    (root / "usr/share/doc/libreoffice-help-es").mkdir(parents=True)
    with gzip.open(root / "usr/share/doc/libreoffice-help-es/changelog.Debian.gz", "wt") as f:
        f.write("libreoffice (4:7.4.7-1+deb12u14) bookworm-security; urgency=medium\n")
    found = debian.fetch_packages(["libreoffice-help-es"], tmp_path / "cache", log=lambda _: None)
    assert found == {"libreoffice-help-es": (root, "4:7.4.7-1+deb12u14")}


def test_fetch_packages_without_apt_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.undo()  # the real download path, with apt-get and dpkg missing
    monkeypatch.setattr(debian.shutil, "which", lambda tool: None)
    with pytest.raises(debian.DebianPackageError) as err:
        debian.fetch_packages(["sword-text-web", "sword-text-sparv"], tmp_path, log=lambda _: None)
    msg = str(err.value)
    assert "apt-get is not available" in msg and "apt-get install sword-text-sparv sword-text-web" in msg
    assert f"dpkg-deb -x NAME_*.deb {tmp_path}/NAME" in msg
