"""The model-agnostic training engine: Trainer, TrainConfig, checkpoints, distributed set-up, prefetching."""

from nanofm.engine.checkpoint import CheckpointError, find_resumable, load_model_weights, read_state_dict
from nanofm.engine.config import TrainConfig, parse_duration
from nanofm.engine.evaluate import evaluate_model
from nanofm.engine.prefetch import collate_generator
from nanofm.engine.trainer import Trainer, TrainingError

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "collate_generator",
    "evaluate_model",
    "find_resumable",
    "load_model_weights",
    "parse_duration",
    "read_state_dict",
]
