"""Helpers for the notebook series "pretrain a transformer from scratch, then fine-tune it".

Where things live, by the series' five steps:

- data: `data` (loaders), `synthetic` (the embedded default data), `acquire` (downloads).
- tokenization and masking: `tokenization` (WordPiece, the special tokens), `masking`,
  `batches` (the three tasks' datasets).
- model: `models`, `word_vectors`, `metrics`, `optimizers`.
- training: `training`, `schedules`, `distribution`, `baseline`, `label_budget`, `finetune_recipes`.
- export: `export`, `predict`, `out_of_domain`, `prompting`.

Apart: `run` (runs the series), `artifacts`, `params`, `cli`, `progress`, `colab`, `notebook_hygiene`,
`plots`. Research and benchmarks live beside the package, in bench/.
"""

import importlib.abc
import importlib.util
import os
import sys
import warnings


def _installed(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a finder that refuses the name
        return False


# TensorFlow runs the text preprocessing; keep its C++ start-up chatter out of notebooks. Where it
# is not installed (a JAX-only TPU VM or GPU image), JAX is the backend that notebooks 03-04 use.
os.environ.setdefault("KERAS_BACKEND", "tensorflow" if _installed("tensorflow") else "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# tqdm's notebook bars need ipywidgets (the `lab` extra); without it a library's `tqdm.auto`
# falls back to text bars, which is fine, and need not say so in every notebook.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

__version__ = "0.1.0"

# What `require_tensorflow` says where TensorFlow is missing.
TENSORFLOW_NEEDED = ("Notebook {notebook} needs TensorFlow (pip install tensorflow tensorflow-text); "
                     "notebooks 03 and 04 run without it under KERAS_BACKEND=jax.")


class TensorFlowMissing(ImportError):
    """A notebook that needs TensorFlow runs where it cannot be imported (the message says which run without it)."""


def tensorflow_available():
    """Whether TensorFlow and tensorflow-text import here (once per process; it imports them where they do).

    Notebooks 03 and 04 read their batches through `tf.data` where they do, and through NumPy
    where they do not (`nbhelpers.batches`), so they run on a JAX-only machine.

    Example:

    >>> tensorflow_available()
    True
    """
    global _TENSORFLOW_AVAILABLE
    if _TENSORFLOW_AVAILABLE is None:
        try:
            import tensorflow  # noqa: F401
            import tensorflow_text  # noqa: F401
        except ImportError:
            _TENSORFLOW_AVAILABLE = False
        else:
            _TENSORFLOW_AVAILABLE = True
    return _TENSORFLOW_AVAILABLE


_TENSORFLOW_AVAILABLE = None


def require_tensorflow(notebook):
    """Stop a notebook that needs TensorFlow with one line where TensorFlow is missing.

    Args:
        notebook: the notebook's number, as "02".

    Raises:
        TensorFlowMissing: TensorFlow or tensorflow-text does not import.

    Example:

    >>> require_tensorflow("02")  # nothing happens where TensorFlow is installed
    """
    if not tensorflow_available():
        raise TensorFlowMissing(TENSORFLOW_NEEDED.format(notebook=notebook)) from None


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Import TensorFlow with the process's stderr (file descriptor 2) muted.

    TensorFlow 2.21 logs its start-up lines (oneDNN, the CUDA stub, "All log messages before
    absl::InitializeLog()") through absl before any log level applies: TF_CPP_MIN_LOG_LEVEL
    does not reach them. Jupyter kernels copy that descriptor into the notebook, and the
    command lines' one-line errors would end under them. Only the import is muted; Python
    exceptions from it still propagate.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and let the normal finders locate it
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _MutedLoader(spec.loader)
        return spec


class _MutedLoader(importlib.abc.Loader):
    """TensorFlow's own loader, its `exec_module` run with stderr muted; all else passed through."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to mute
            return self.loader.exec_module(module)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            self.loader.exec_module(module)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowImport())
