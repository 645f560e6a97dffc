"""The model-agnostic training engine: Trainer, TrainConfig, checkpoints, distributed set-up, prefetching."""

from .checkpoint import CheckpointError, find_resumable, load_model_weights, read_state_dict
from .config import TrainConfig, parse_duration
from .evaluate import evaluate_model
from .prefetch import collate_generator
from .trainer import Trainer, TrainingError

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
