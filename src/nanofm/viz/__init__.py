"""Pictures of what a model does: loss curves (more to come: attention maps, samples)."""

from .curves import plot_loss_curve

__all__ = ["plot_loss_curve"]
