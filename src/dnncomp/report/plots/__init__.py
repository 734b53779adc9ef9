"""The report's figures, one module per family, drawn in one shared style (:mod:`.style`).

matplotlib is imported only when a figure is drawn (it is in the ``report`` and ``full``
extras, not in the device install), and only through its object API: no pyplot, so a
caller's interactive backend is never switched.
"""

from .latency import plot_latency
from .layers import LAYER_VARIANTS, layer_details, plot_layers
from .sizes import plot_sizes
from .study import plot_study_comparison
from .style import MATPLOTLIB_HINT, matplotlib_parts
from .tradeoff import plot_accuracy_vs
from .training import plot_accuracy_vs_training_time, plot_history, training_time_points

__all__ = [
    "LAYER_VARIANTS",
    "MATPLOTLIB_HINT",
    "layer_details",
    "matplotlib_parts",
    "plot_accuracy_vs",
    "plot_accuracy_vs_training_time",
    "plot_history",
    "plot_latency",
    "plot_layers",
    "plot_sizes",
    "plot_study_comparison",
    "training_time_points",
]
