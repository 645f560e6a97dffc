"""Hugging Face model folders on disk (never the network): read and write them, whichever the family.

    config.json                 the architecture ("model_type", "architectures") and its sizes
    model.safetensors           the weights (or model.safetensors.index.json and its shards)
    pytorch_model.bin           older weights, read with torch.load(weights_only=True) only, never unpickled freely
    tokenizer files             BERT: see nanofm.interop.tokenizer
    preprocessor_config.json    ViT: image_mean and image_std (transformers' default: 0.5 per channel)

    conv = load_hf("bert-folder")                   # Converted: .model (nanofm), .architecture, .labels, .dropped
    save_hf(conv.model, "out", tokenizer=tok)       # config.json, model.safetensors, tokenizer files
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import Tensor, nn

from nanofm.engine.checkpoint import read_state_dict
from nanofm.errors import DataError
from nanofm.interop.mapping import Converted
from nanofm.interop.tokenizer import read_json, save_hf_tokenizer, write_json
from nanofm.registry import adapter, adapter_of, adapters
from nanofm.text.wordpiece import WordPieceTokenizer

WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
CONTENTS = ("config.json, model.safetensors (or pytorch_model.bin) and, for BERT, its tokenizer (tokenizer.json or "
            "vocab.txt, tokenizer_config.json, special_tokens_map.json)")


def is_hf_folder(path: str | Path) -> bool:
    """A folder with config.json and no config.yaml (which would make it a nanofm run folder)."""
    path = Path(path)
    return (path / "config.json").is_file() and not (path / "config.yaml").is_file()


def read_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a Hugging Face model folder holds {CONTENTS}")
    return read_json(path)


def read_weights(folder: str | Path) -> tuple[dict[str, Tensor], Path]:
    """All tensors of the folder, under their Hugging Face names, and the file (or shard index) read."""
    folder = Path(folder)
    path = next((folder / n for n in WEIGHTS if (folder / n).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin; a Hugging Face model folder "
                                f"holds {CONTENTS} (TensorFlow and Flax weights are not read)")
    if not path.name.endswith(".index.json"):
        return read_state_dict(path), path
    weights: dict[str, Tensor] = {}
    for shard in sorted(set(read_json(path).get("weight_map", {}).values())):
        weights |= read_state_dict(folder / shard)  # a missing shard: CheckpointError naming it
    return weights, path


def from_hf(config: Mapping[str, Any], weights: Mapping[str, Tensor], target: str | None = None) -> Converted:
    """config.json (a dict) and Hugging Face tensors -> a nanofm model holding them, by the adapter (a family's
    hf.py, found through the registry) of the config's model_type."""
    found = adapter(config.get("model_type"))
    if found is None:
        raise DataError(f"model_type {config.get('model_type')!r}: nanofm reads {_readable()} folders")
    return found.from_hf(config, weights, target)


def to_hf(model: nn.Module, labels: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A nanofm BERT or ViT -> (config.json as a dict, Hugging Face tensors); labels name a head's classes."""
    found = adapter_of(model)
    if found is None:
        exported = " and ".join(f"{a.title} ({', '.join(c.__name__ for c in a.classes)})" for a in adapters())
        raise DataError(f"{type(model).__name__}: nanofm exports {exported or 'no class (import nanofm.families)'}")
    return found.to_hf(model, labels)


def _readable() -> str:
    return " and ".join(a.title for a in adapters()) or "no (import nanofm.families to register the families')"


def load_hf(folder: str | Path, target: str | None = None) -> Converted:
    """A Hugging Face folder -> a nanofm model; `target` a nanofm class name (default: the folder's own)."""
    folder = Path(folder)
    config = read_config(folder)
    weights, _ = read_weights(folder)
    try:
        return from_hf(config, weights, target)
    except ValueError as e:  # the config or the weights do not fit: name the folder (a refusal the user can act on)
        raise (DataError if type(e) is ValueError else type(e))(f"{folder}: {e}") from None


def save_hf(model: nn.Module, folder: str | Path, labels: list[str] | None = None,
            tokenizer: WordPieceTokenizer | None = None, image_stats: tuple[list[float], list[float]] | None = None) -> list[str]:
    """Write a Hugging Face folder for `model` (with its tokenizer, or a ViT's normalisation); returns the file names."""
    folder = Path(folder)
    config, weights = to_hf(model, labels)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", config)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})  # transformers checks "format"
    files = ["config.json", "model.safetensors"]
    if tokenizer is not None:
        files += save_hf_tokenizer(tokenizer, folder, model.cfg.max_len)
    if image_stats is not None:
        side = model.cfg.image_size
        write_json(folder / "preprocessor_config.json", {
            "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": side, "width": side},
            "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": list(image_stats[0]), "image_std": list(image_stats[1]),
        })  # fmt: skip
        files.append("preprocessor_config.json")
    return files


def image_stats(folder: str | Path, channels: int) -> tuple[list[float], list[float]]:
    """(mean, std) per channel from preprocessor_config.json, applied to pixels scaled to [0, 1]."""
    p = read_json(Path(folder) / "preprocessor_config.json")
    if p.get("do_normalize") is False:
        return [0.0] * channels, [1.0] * channels
    return list(p.get("image_mean", [0.5] * channels)), list(p.get("image_std", [0.5] * channels))
