"""nanofm: pretrain and adapt small foundation models on one shared Transformer core.

    import nanofm
    fill = nanofm.load("runs/bert")                 # the predictor of a run or Hugging Face folder (nanofm.api)
    fill("La capital de [MASK] es Madrid.")
"""

from nanofm.version import __version__

__all__ = ["__version__", "load", "pipeline"]


def __getattr__(name: str):
    if name in ("load", "pipeline"):  # imported on first use: `import nanofm` stays light (no torch)
        from nanofm import api

        return getattr(api, name)
    raise AttributeError(f"module 'nanofm' has no attribute {name!r}")
