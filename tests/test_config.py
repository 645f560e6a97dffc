from dataclasses import dataclass, field
from typing import Literal

import pytest

from nanofm import families as models
from nanofm.config import ConfigError, from_dict, load_config, to_dict, to_yaml
from nanofm.families.seq2seq.copy import CopyTaskConfig
from nanofm.families.seq2seq.transformer import EncoderDecoderConfig


@dataclass
class Inner:
    width: int = 4  # a width
    rate: float = 0.5  # a rate
    kind: Literal["a", "b"] = "a"  # one of two
    sizes: tuple[int, ...] = (1, 2)  # several sizes
    name: str | None = None  # optional name


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    steps: int = 10
    flag: bool = False


def test_yaml_round_trip(tmp_path):
    cfg = CopyTaskConfig(model=EncoderDecoderConfig(vocab_size=40, d_model=32, n_heads=2))
    cfg.train.steps = 700
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(cfg))
    again = load_config(CopyTaskConfig, path)
    assert again == cfg and to_yaml(again) == to_yaml(cfg)
    outer = Outer(Inner(sizes=(3, 4, 5), name="x", kind="b"))
    path.write_text(to_yaml(outer))
    assert load_config(Outer, path) == outer  # tuples and Literals survive


def test_json_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"inner": {"width": 8}, "steps": 3}')
    cfg = load_config(Outer, path, ["inner.rate=1e-3", "flag=true", "inner.sizes=[5]", "inner.name=null"])
    assert cfg == Outer(Inner(width=8, rate=1e-3, sizes=(5,)), steps=3, flag=True)
    assert isinstance(cfg.inner.rate, float)


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: 3\ninner:\n  widht: 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, path)
    msg = str(e.value)
    assert f"{path}:3" in msg and "unknown key 'inner.widht'" in msg and "did you mean 'inner.width'" in msg


@pytest.mark.parametrize(
    "override, expected",
    [
        ("steps=abc", "'steps' must be int, got str 'abc'"),
        ("steps=1.5", "'steps' must be int, got float"),
        ("flag=1", "'flag' must be bool, got int"),
        ("steps=true", "'steps' must be int, got bool"),
        ("inner.kind=c", "'inner.kind' must be one of ['a', 'b']"),
        ("inner.sizes=[1, x]", "'inner.sizes[1]' must be int"),
        ("inner=3", "expected a mapping for Inner"),
        ("bogus=1", "unknown key 'bogus'"),
        ("noequals", "expected key=value"),
    ],
)
def test_wrong_types_are_rejected_by_name(override, expected):
    with pytest.raises(ConfigError) as e:
        load_config(Outer, None, [override])
    assert expected in str(e.value)
    assert "override" in str(e.value)


def test_invalid_values_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="divisible by n_heads"):
        from_dict(EncoderDecoderConfig, {"d_model": 30, "n_heads": 4})
    bad = tmp_path / "broken.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(Outer, bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top"):
        load_config(Outer, bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(Outer, tmp_path / "missing.yaml")


def test_to_dict_is_plain():
    d = to_dict(Outer())
    assert d == {"inner": {"width": 4, "rate": 0.5, "kind": "a", "sizes": [1, 2], "name": None}, "steps": 10, "flag": False}


def test_registry_presets_and_overrides():
    names = {p.name for p in models.presets("encoder-decoder")}
    assert {"transformer-tiny", "transformer-base"} <= names
    base = models.get_config("transformer-base")
    assert (base.d_model, base.n_heads, base.n_encoder_layers, base.d_ff) == (512, 8, 6, 2048)
    model = models.create("transformer-tiny", d_model=32, n_heads=2)
    assert model.cfg.d_model == 32 and model.encoder.layers[0].self_attn.n_heads == 2
    assert models.get_config("transformer-tiny").d_model == 64  # the preset itself is unchanged
    with pytest.raises(ConfigError, match="did you mean 'd_model'"):
        models.create("transformer-tiny", d_modle=32)
    with pytest.raises(ConfigError, match="unknown preset"):
        models.create("no-such-model")
