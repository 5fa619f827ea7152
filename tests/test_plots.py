"""Pictures: a model's diagram where pydot and graphviz are installed, one line saying why not elsewhere."""

import importlib.util
import shutil
from pathlib import Path

import keras
import pytest

from nbhelpers import plots


def _small_model():
    inputs = keras.Input((4,), name="features")
    return keras.Model(inputs, keras.layers.Dense(1, name="score")(inputs), name="tiny")


def test_without_pydot_or_graphviz_the_diagram_says_what_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(plots.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(plots.shutil, "which", lambda name: None)
    assert plots.diagram_tools_missing() == "the pydot package and graphviz's dot program"
    assert plots.model_diagram(_small_model()) is None
    assert capsys.readouterr().out.strip() == (
        "No diagram of tiny: keras.utils.plot_model needs the pydot package and graphviz's dot program "
        "(pip install pydot; graphviz from your system's packages).")


def test_with_the_tools_the_diagram_is_plot_models_picture(monkeypatch, tmp_path):
    """Where pydot and graphviz are installed, the real drawing; elsewhere plot_model's part is played
    by a stand-in that writes a PNG, so the helper's own work (arguments, file, image) is checked."""
    drawn = {}
    if importlib.util.find_spec("pydot") is None or shutil.which("dot") is None:
        monkeypatch.setattr(plots, "diagram_tools_missing", lambda: None)

        def plot_model(model, to_file, **options):
            drawn.update(options, model=model)
            (tmp_path / "written").write_text(to_file)
            with open(to_file, "wb") as f:
                f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)

        monkeypatch.setattr(plots.keras.utils, "plot_model", plot_model)
    model = _small_model()
    image = plots.model_diagram(model, tmp_path / "tiny.png")
    assert image is not None and image.data.startswith(b"\x89PNG")
    assert (tmp_path / "tiny.png").is_file()
    if drawn:
        assert drawn["model"] is model and drawn["show_shapes"] and not drawn["expand_nested"]
    # Without a path, the picture comes from a temporary file that is gone afterwards.
    assert plots.model_diagram(model).data.startswith(b"\x89PNG")
    if drawn:
        assert not Path((tmp_path / "written").read_text()).exists()


@pytest.mark.parametrize("metric", [None, "sparse_categorical_accuracy"])
def test_plot_history_saves_loss_and_accuracy(tmp_path, metric):
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "sparse_categorical_accuracy": [0.2, 0.4],
               "val_sparse_categorical_accuracy": [0.1, 0.3]}
    figure = plots.plot_history(history, tmp_path / "history.png", "pretraining", metric=metric)
    assert (tmp_path / "history.png").stat().st_size > 0
    assert [axis.get_ylabel() for axis in figure.axes] == ["loss", "sparse categorical accuracy"]
