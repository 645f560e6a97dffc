"""The cased WordPiece tokenizer: accents, ñ and case kept; fixed special ids; word ids; save / load."""


import pytest

from nanofm.text.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer, train_wordpiece

TEXT = ("El Señor habló a Moisés en España. La niña comió piñas.\n"
        "Ésta es la canción del año; el señor y la señora cenan. ¿Habló el Señor?\n") * 40


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> WordPieceTokenizer:
    path = tmp_path_factory.mktemp("wp") / "train.txt"
    path.write_text(TEXT, encoding="utf-8")
    return train_wordpiece([path], vocab_size=300)


def test_special_token_ids(tok):
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)


def test_cased_accents_and_enye_kept(tok):
    enc = tok.encode("Señor señor España niña canción")
    pieces = tok.tokens(enc.ids)
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    assert "Señor" in pieces and "señor" in pieces and "España" in pieces  # case and ñ kept, no stripping
    assert tok.unk_id not in enc.ids
    assert tok.decode(enc.ids) == "Señor señor España niña canción"
    assert tok.decode(tok.encode("¿Habló el Señor?").ids).startswith("¿Habló el Señor")


def test_word_ids_align_subwords_and_pairs(tok):
    enc = tok.encode("cancioncitas Moisés.")
    assert enc.word_ids[0] is None and enc.word_ids[-1] is None
    inner = enc.word_ids[1:-1]
    assert inner == sorted(inner) and inner[0] == 0 and inner[-1] == 2  # 3 BERT words: "cancioncitas", "Moisés", "."
    assert inner.count(0) > 1  # the unseen word is split into several pieces of word 0
    pair = tok.encode_pair("El año", "La niña")
    assert pair.type_ids == [0, 0, 0, 0, 1, 1, 1]
    assert pair.word_ids == [None, 0, 1, None, 2, 3, None]
    words = tok.encode_words(["El", "Señor,", "habló"])
    assert [w for w in words.word_ids if w is not None] == [0, 1, 1, 2]  # label on the first token of each word
    assert len(tok.encode_pair("El año " * 20, "La niña", max_length=10).ids) == 10


def test_save_and_load_from_json_or_vocab(tok, tmp_path):
    tok.save(tmp_path)
    vocab = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == list(SPECIAL_TOKENS) and len(vocab) == tok.vocab_size
    text = "La señora habló en España."
    for path in (tmp_path, tmp_path / "tokenizer.json", tmp_path / "vocab.txt"):
        assert WordPieceTokenizer.load(path).encode(text) == tok.encode(text)
    with pytest.raises(FileNotFoundError):
        WordPieceTokenizer.load(tmp_path / "missing.json")
