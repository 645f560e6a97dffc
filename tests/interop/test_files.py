"""Hugging Face folders on disk: missing files named, pytorch_model.bin through torch.load(weights_only=True)
only, sharded weights, and the tokenizer files read and written so that the tokenizer round-trips."""

import json
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from nanofm.engine import CheckpointError
from nanofm.interop import load_hf, load_hf_tokenizer, load_tokenizer, save_hf_tokenizer
from nanofm.text.wordpiece import WordPieceTokenizer, train_wordpiece

from .conftest import bert_config, jitter, padded_batch

TEXT = ("El Señor habló a Moisés en España. La niña comió piñas.\n"
        "Ésta es la canción del año; el señor y la señora cenan. ¿Habló el Señor?\n") * 40
SAMPLES = ["El Señor habló en España.", "ÉSTA canción [MASK] del año", "el senor hablo en espana", "Señora, ¿cenan?",
           "x" * 120]


class Payload:  # not a tensor: torch.load(weights_only=True) must refuse it
    pass


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    jitter(transformers.BertForMaskedLM(bert_config())).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory) -> WordPieceTokenizer:
    path = tmp_path_factory.mktemp("wp") / "train.txt"
    path.write_text(TEXT, encoding="utf-8")
    return train_wordpiece([path], vocab_size=300)


def test_missing_files_are_named(tmp_path, hf_dir):
    with pytest.raises(FileNotFoundError, match=r"config.json: missing; a Hugging Face model folder holds config.json, "
                                                r"model.safetensors \(or pytorch_model.bin\)"):
        load_hf(tmp_path)
    shutil.copy(hf_dir / "config.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="no model.safetensors or pytorch_model.bin; a Hugging Face model folder holds"):
        load_hf(tmp_path)
    with pytest.raises(FileNotFoundError, match="no tokenizer.json or vocab.txt; a Hugging Face BERT folder holds"):
        load_hf_tokenizer(tmp_path)


def test_pytorch_model_bin_with_weights_only(tmp_path, hf_dir):
    shutil.copy(hf_dir / "config.json", tmp_path)
    weights = load_file(hf_dir / "model.safetensors")
    torch.save(weights, tmp_path / "pytorch_model.bin")
    ours, reference = load_hf(tmp_path).model.eval(), load_hf(hf_dir).model.eval()
    a, b = ours.state_dict(), reference.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.save({**weights, "payload": Payload()}, tmp_path / "pytorch_model.bin")  # needs a full unpickle: refused
    with pytest.raises(CheckpointError, match="pytorch_model.bin: refused to load: it holds .*Payload") as e:
        load_hf(tmp_path)
    assert "weights_only" not in str(e.value)  # torch's advice to retry with weights_only=False is never passed on


def test_sharded_safetensors(tmp_path, hf_dir):
    shutil.copy(hf_dir / "config.json", tmp_path)
    weights = load_file(hf_dir / "model.safetensors")
    names = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: weights[k] for k in keys}, str(tmp_path / file), metadata={"format": "pt"})
    index = {"weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    tokens, segments, _ = padded_batch(60)
    with torch.no_grad():
        assert torch.equal(load_hf(tmp_path).model.eval()(tokens, segments).logits,
                           load_hf(hf_dir).model.eval()(tokens, segments).logits)


def test_tokenizer_round_trip_and_transformers(tmp_path, wordpiece):
    files = save_hf_tokenizer(wordpiece, tmp_path, max_len=64)
    assert all((tmp_path / f).is_file() for f in files) and len(files) == 4
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["do_lower_case"] is False and config["model_max_length"] == 64 and config["mask_token"] == "[MASK]"
    back = load_hf_tokenizer(tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in SAMPLES:
        assert back.encode(text) == wordpiece.encode(text)
        assert theirs(text)["input_ids"] == wordpiece.encode(text).ids
    pair = theirs("El año", "La niña")
    enc = wordpiece.encode_pair("El año", "La niña")
    assert (pair["input_ids"], pair["token_type_ids"]) == (enc.ids, enc.type_ids)


@pytest.mark.parametrize("lower", [None, True, False])  # None: no tokenizer_config.json (transformers: lowercase)
def test_vocab_txt_alone_is_google_bert(lower, tmp_path, wordpiece):
    wordpiece.save(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    if lower is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))
    ours = load_tokenizer(tmp_path)
    theirs = transformers.BertTokenizer.from_pretrained(tmp_path)
    for text in SAMPLES:
        assert ours.encode(text).ids == theirs(text)["input_ids"], text
    assert (ours.encode("Señor").ids == ours.encode("senor").ids) == (lower is not False)


def test_special_tokens_other_than_berts_are_refused(tmp_path, wordpiece):
    save_hf_tokenizer(wordpiece, tmp_path, max_len=64)
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": {"content": "<pad>"}}))
    with pytest.raises(ValueError, match=r"special tokens \{'pad_token': '<pad>'\}"):
        load_hf_tokenizer(tmp_path)


def test_special_tokens_may_have_any_ids(tmp_path, wordpiece):
    vocab = (lambda v: v[5:] + v[:5])(sorted(wordpiece.hf.get_vocab(), key=wordpiece.hf.get_vocab().get))  # BETO-like
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    tok = load_hf_tokenizer(tmp_path)
    assert (tok.pad_id, tok.mask_id) == (len(vocab) - 5, len(vocab) - 1)
    assert tok.encode("El [MASK]").ids == transformers.BertTokenizer.from_pretrained(tmp_path)("El [MASK]")["input_ids"]
