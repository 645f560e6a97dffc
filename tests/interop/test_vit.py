"""ViT: tiny random transformers ViTs read by nanofm give the same outputs; nanofm -> Hugging Face -> nanofm
is the identity; transformers loads nanofm's exports (sin-cos positions too); what does not fit is refused."""

import pytest
import torch
import transformers
from safetensors.torch import load_file

from nanofm.families.vit.vit import ViT, ViTConfig
from nanofm.interop import from_hf, load_hf, read_config, save_hf

from .conftest import jitter, record


def _hf_config(**overrides) -> transformers.ViTConfig:
    kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=28,
              patch_size=7, num_channels=1, num_labels=10, layer_norm_eps=1e-6)
    return transformers.ViTConfig(**{**kw, **overrides})


@pytest.mark.parametrize("name", ["ViTModel", "ViTForImageClassification"])
def test_hf_vit_read_by_nanofm_gives_the_same_outputs(name, tmp_path):
    c = _hf_config(id2label={i: f"class{i}" for i in range(10)}, num_channels=3)
    hf = jitter(getattr(transformers, name)(c))
    hf.save_pretrained(tmp_path)
    conv = load_hf(tmp_path)
    ours = conv.model.eval()
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        theirs = hf(pixel_values=x)
        if name == "ViTModel":
            record(f"tiny {name} (last hidden state)", ours.forward_features(x), theirs.last_hidden_state)
            assert conv.labels is None and [d.split()[0] for d in conv.dropped] == ["pooler.dense.bias", "pooler.dense.weight"]
        else:
            record(f"tiny {name} (logits)", ours(x).logits, theirs.logits)
            assert conv.labels == [f"class{i}" for i in range(10)] and conv.dropped == []


@pytest.mark.parametrize("n_classes", [0, 10])
def test_nanofm_hf_nanofm_is_the_identity(n_classes, tmp_path):
    ours = jitter(ViT(ViTConfig(patch_size=7, d_model=32, n_layers=2, n_heads=2, d_ff=64, n_classes=n_classes, norm_eps=1e-5)))
    save_hf(ours, tmp_path)
    back = load_hf(tmp_path)
    assert back.model.cfg == ours.cfg
    a, b = ours.state_dict(), back.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit


@pytest.mark.parametrize("pos", ["learned", "sincos"])
def test_transformers_loads_the_export(pos, tmp_path):
    ours = jitter(ViT(ViTConfig(patch_size=7, d_model=32, n_layers=2, n_heads=2, d_ff=64, n_classes=10, pos=pos)))
    save_hf(ours, tmp_path, labels=[f"c{i}" for i in range(10)], image_stats=([0.29], [0.35]))
    hf, info = transformers.AutoModelForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and hf.config.id2label[3] == "c3"
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        record(f"nanofm ViT ({pos} positions) loaded by transformers.AutoModelForImageClassification",
               ours(x).logits, hf.eval()(pixel_values=x).logits)
    back = load_hf(tmp_path).model.eval()  # sin-cos comes back as a learned table of the same values
    assert back.cfg.pos == "learned" and torch.equal(back.pos_embed.weight, ours.pos_embed.weight)


def test_headless_export_loads_as_vit_model(tmp_path):
    ours = jitter(ViT(ViTConfig(patch_size=7, d_model=32, n_layers=2, n_heads=2, d_ff=64, n_classes=0)))
    save_hf(ours, tmp_path)
    hf, info = transformers.AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(hf).__name__ == "ViTModel" and not info["unexpected_keys"]
    assert {k.split(".")[0] for k in info["missing_keys"]} <= {"pooler"}  # transformers' pooler, which nanofm has not
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        record("nanofm head-less ViT loaded by transformers.AutoModel", ours.forward_features(x),
               hf.eval()(pixel_values=x).last_hidden_state)


def test_unrepresentable_vits_are_refused(tmp_path):
    transformers.ViTForImageClassification(_hf_config()).save_pretrained(tmp_path)
    weights, config = load_file(tmp_path / "model.safetensors"), read_config(tmp_path)
    for change, message in [({"image_size": [28, 32]}, r"image_size \[28, 32\]: nanofm's ViT takes square"),
                            ({"hidden_act": "relu"}, "hidden_act 'relu'"), ({"qkv_bias": False}, "qkv_bias is false")]:
        with pytest.raises(ValueError, match=message):
            from_hf({**config, **change}, weights)
    mean_pool = ViT(ViTConfig(patch_size=7, d_model=32, n_layers=1, n_heads=2, d_ff=64, pool="mean"))
    with pytest.raises(ValueError, match="pool='mean'"):
        save_hf(mean_pool, tmp_path / "out")


def test_mae_run_exports_its_encoder(tmp_path):
    from nanofm.config import to_yaml
    from nanofm.convert import convert_to_hf
    from nanofm.families.vit.mae import MAE, MAEConfig
    from nanofm.families.vit.task import MAETaskConfig
    from nanofm.engine.checkpoint import save_checkpoint, set_pointer

    cfg = MAETaskConfig(model=ViTConfig(patch_size=7, d_model=32, n_layers=2, n_heads=2, d_ff=64, n_classes=0, pos="sincos"),
                        mae=MAEConfig(decoder_dim=32, decoder_layers=1, decoder_heads=2, decoder_d_ff=64))
    mae = jitter(MAE(ViT(cfg.model), cfg.mae))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(to_yaml(cfg))
    save_checkpoint(tmp_path / "run" / "checkpoints", "step-000001", mae, torch.optim.SGD(mae.parameters()), {}, to_yaml(cfg))
    set_pointer(tmp_path / "run" / "checkpoints", "latest", "step-000001")
    lines = convert_to_hf(tmp_path / "run", tmp_path / "hf")
    assert "(ViTModel, from" in lines[0] and "sin-cos positions written as the learned table" in lines[1]
    hf = transformers.AutoModel.from_pretrained(tmp_path / "hf").eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        record("nanofm MAE encoder (sin-cos) exported, transformers.AutoModel", mae.encoder.forward_features(x),
               hf(pixel_values=x).last_hidden_state)
