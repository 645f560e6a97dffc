"""Hugging Face interoperability: the only place in nanofm that knows Hugging Face names.

    conv = load_hf("folder")                 # config.json + model.safetensors -> nanofm model (conv.model)
    config, weights = to_hf(model)           # a nanofm BERT or ViT -> config.json (dict) + Hugging Face tensors
    save_hf(model, "out", tokenizer=tok)     # ... written as a folder transformers loads

Run folders <-> Hugging Face folders (`nanofm convert`) are nanofm.convert's, which uses this package.
No network: folders on disk only. Weights are checked name by name and shape by shape (WeightMismatchError).
"""

from nanofm.interop.folder import from_hf, is_hf_folder, load_hf, read_config, read_weights, save_hf, to_hf
from nanofm.interop.mapping import Converted, WeightMismatchError
from nanofm.interop.tokenizer import load_hf_tokenizer, load_tokenizer, save_hf_tokenizer, tokenizer_files

__all__ = [
    "Converted",
    "WeightMismatchError",
    "from_hf",
    "is_hf_folder",
    "load_hf",
    "load_hf_tokenizer",
    "load_tokenizer",
    "read_config",
    "read_weights",
    "save_hf",
    "save_hf_tokenizer",
    "to_hf",
    "tokenizer_files",
]
