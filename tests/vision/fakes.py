"""Tiny on-disk fixtures for the vision tests: IDX files and CIFAR-10 python batches written like the originals."""

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file (gzip when the name ends in .gz): magic 0 0 type ndim, big-endian uint32 dims, big-endian data."""
    code = {np.uint8: 0x08, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}[array.dtype.type]
    raw = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_fake_fashion_mnist(folder: Path, n_train: int = 40, n_test: int = 10, seed: int = 0) -> Path:
    """The four .gz IDX files of dataset-fashion-mnist, with random 28x28 images and balanced labels 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return folder


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str opcodes (BINSTRING), as the original CIFAR-10 files (cPickle, protocol 2) do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # the originals' name


def write_fake_cifar10(folder: Path, per_batch: int = 4) -> Path:
    """batches.meta, data_batch_1..5 and test_batch with `per_batch` random images each."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": names, b"num_vis": 3072}))
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        batch = {b"batch_label": name.encode(), b"labels": [(i + k) % 10 for k in range(per_batch)],
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"img{k}.png".encode() for k in range(per_batch)]}
        (folder / name).write_bytes(py2_pickle(batch))
    return folder
