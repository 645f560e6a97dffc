"""Pictures of what a model does: loss curves, attention maps."""

from .attention import plot_attention
from .curves import plot_loss_curve

__all__ = ["plot_attention", "plot_loss_curve"]
