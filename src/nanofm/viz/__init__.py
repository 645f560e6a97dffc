"""Pictures of what a model does: loss and label curves, attention maps."""

from nanofm.viz.attention import plot_attention
from nanofm.viz.curves import plot_label_curve, plot_loss_curve

__all__ = ["plot_attention", "plot_label_curve", "plot_loss_curve"]
