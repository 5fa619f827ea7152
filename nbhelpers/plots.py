"""Pictures: training curves, accuracies, the label-budget curve, and a model's diagram.

Each plot is saved as a PNG and returned as a matplotlib figure, which a notebook shows.

Example:

>>> import tempfile
>>> history = {"loss": [0.9, 0.7], "val_loss": [1.0, 0.8], "accuracy": [0.5, 0.6], "val_accuracy": [0.5, 0.55]}
>>> with tempfile.TemporaryDirectory() as folder:
...     figure = plot_history(history, f"{folder}/history.png", "fine-tuning")
>>> [axis.get_ylabel() for axis in figure.axes]
['loss', 'accuracy']
"""

import importlib.util
import shutil
import tempfile
from pathlib import Path

import keras
import matplotlib.pyplot as plt


def plot_history(history, path, title, metric=None):
    """Draw loss and the accuracy metric per epoch (training and validation), save it as PNG.

    Args:
        history: a dict of per-epoch lists as returned by `fit_logged`.
        path: where to save the PNG.
        title: the figure's title.
        metric: the accuracy to draw; by default the first whose name has "accuracy".

    Returns:
        The matplotlib figure (a notebook shows it inline).
    """
    accuracy = metric or next(k for k in history if "accuracy" in k and not k.startswith("val_"))
    epochs = range(1, len(history["loss"]) + 1)
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for axis, key in zip(axes, ("loss", accuracy)):
        axis.plot(epochs, history[key], marker="o", label="training")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key.replace("_", " "))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return figure


def plot_accuracies(accuracies, path, title):
    """Draw a bar chart of named accuracies (e.g. baseline vs transformers), save it as PNG.

    Args:
        accuracies: a dict of label -> accuracy in [0, 1], drawn in order.
        path: where to save the PNG.
        title: the figure's title.
    """
    figure, axis = plt.subplots(figsize=(6, 3.2))
    bars = axis.bar(list(accuracies), list(accuracies.values()), color=["#999999", "#6a9fd4", "#2c6fbb"][: len(accuracies)])
    axis.bar_label(bars, fmt="%.3f")
    low = min(accuracies.values())
    axis.set_ylim(max(0.0, low - 0.1), 1.0)
    axis.set_ylabel("accuracy")
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return figure


def plot_label_budget(summary, path, title, all_labels=None):
    """Draw dev accuracy against training labels (log axis) per arm: mean and spread over seeds.

    Args:
        summary: `{arm: {budget: (mean, standard deviation)}}`, as `label_budget.summarize` gives.
        path: where to save the PNG.
        title: the figure's title.
        all_labels: optionally `(count, {arm: accuracy})` for the runs on every label (one seed,
            a fixed schedule), drawn as open markers.
    """
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    colors = dict(zip(summary, ["#999999", "#6a9fd4", "#2c6fbb"]))
    for arm, per_budget in summary.items():
        budgets = sorted(per_budget, key=int)
        means = [per_budget[b][0] for b in budgets]
        spreads = [per_budget[b][1] for b in budgets]
        axis.errorbar([int(b) for b in budgets], means, yerr=spreads, marker="o", capsize=3,
                      label=arm, color=colors[arm])
    if all_labels:
        count, accuracies = all_labels
        for arm, accuracy in accuracies.items():
            axis.plot([count], [accuracy], marker="o", markerfacecolor="none", color=colors.get(arm, "black"))
        axis.annotate("all labels,\none seed", (count, min(accuracies.values())), textcoords="offset points",
                      xytext=(0, -28), ha="center", fontsize=8)
    axis.set_xscale("log")
    axis.set_xlabel("training labels (log scale)")
    axis.set_ylabel("dev accuracy (mean ± sd over seeds)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return figure


def diagram_tools_missing():
    """What `keras.utils.plot_model` lacks here, in words (pydot, graphviz's `dot`), or `None`."""
    missing = [name for name, present in (("the pydot package", importlib.util.find_spec("pydot")),
                                          ("graphviz's dot program", shutil.which("dot"))) if not present]
    return " and ".join(missing) or None


def model_diagram(model, path=None, expand_nested=False):
    """Draw `model`'s layers and their output shapes as a graph, with `keras.utils.plot_model`.

    The drawing needs the pydot package and graphviz's `dot` program, which a plain install
    lacks; without them this prints one line saying what is missing and returns `None` (a
    notebook cell then shows that line, and `model.summary()` still shows the structure).

    Args:
        model: a built Keras model.
        path: where to save the PNG; by default a temporary file (the returned image holds the picture).
        expand_nested: draw the layers inside nested models too.

    Returns:
        An `IPython.display.Image` of the diagram (a notebook shows it), or `None` where it cannot be drawn.
    """
    missing = diagram_tools_missing()
    if missing:
        print(f"No diagram of {model.name}: keras.utils.plot_model needs {missing} (pip install pydot; "
              "graphviz from your system's packages).")
        return None
    from IPython.display import Image  # Jupyter's, present wherever a notebook runs

    with tempfile.TemporaryDirectory() as folder:
        path = Path(path or Path(folder) / f"{model.name}.png")
        keras.utils.plot_model(model, to_file=str(path), show_shapes=True, show_layer_names=True,
                               expand_nested=expand_nested, dpi=72)
        return Image(filename=str(path))  # read now, before the temporary folder goes
