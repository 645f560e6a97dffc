"""nanofm: pretrain and adapt small foundation models on one shared Transformer core."""

__version__ = "0.1.0"
