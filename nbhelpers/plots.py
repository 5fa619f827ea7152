"""Training curves.

Example:

>>> figure = plot_history(history, "artifacts/03_encoder/history.png", "MLM pretraining")
>>> figure = plot_accuracies({"bag of words": 0.80, "pretrained": 0.84}, "comparison.png", "SST-2 dev")
"""

import matplotlib.pyplot as plt


def plot_history(history, path, title):
    """Draw loss and the accuracy metric per epoch (training and validation), save it as PNG.

    Args:
        history: a dict of per-epoch lists as returned by `fit_logged`.
        path: where to save the PNG.
        title: the figure's title.

    Returns:
        The matplotlib figure (a notebook shows it inline).
    """
    accuracy = next(k for k in history if "accuracy" in k and not k.startswith("val_"))
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
