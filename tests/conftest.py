"""Shared fixtures: a hand-written vocabulary, a miniature notebook-02 artifact, the real data when
present, and a runner of scripts under another Keras backend."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nbhelpers  # noqa: F401  (sets the backend and quiet logs before TensorFlow loads)

ROOT = Path(__file__).resolve().parents[1]
# Real copies of SST-2, the BERT vocabulary and corpora, beside the checkout on the project's
# machines (see its README); a user's machine usually has none.
SHARED_DATA = ROOT.parent / "shared" / "data"


def printed(notebook_path):
    """What an executed notebook printed to stdout, every cell's stream outputs joined in order.

    The kernel flushes stdout on a timer, so one `print` can reach the notebook as several stream
    outputs, split anywhere (a CI run once split "prompted:" from the rest of its line): search
    this text, never the notebook's JSON.
    """
    notebook = json.loads(Path(notebook_path).read_text())
    return "".join("".join(output["text"]) for cell in notebook["cells"] for output in cell.get("outputs", [])
                   if output["output_type"] == "stream" and output["name"] == "stdout")


HAND_VOCABULARY = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "film", "was", "good", "bad", "not", "cafe", "##s", ".", "a",
]


@pytest.fixture(scope="session")
def hand_vocabulary():
    return list(HAND_VOCABULARY)


@pytest.fixture(scope="session")
def run_under_backend():
    """`run(script, backend, *args, **env)`: run Python source `script` (with `args` as its
    `sys.argv[1:]` and `env` added to the environment) in a new process under the Keras backend
    `backend`, fixed when Keras is imported; return the JSON of the last line it prints."""

    def run(script, backend, *args, **env):
        done = subprocess.run(
            [sys.executable, "-c", script, *map(str, args)],
            env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{backend} script failed:\n{done.stderr[-4000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture
def miniature_mlm_data(tmp_path):
    """A factory of `(data_dir, mlm_data)`: synthetic SST-2 and its vocabulary under `tmp_path/data`,
    and a notebook-02 artifact folder in miniature (random 16-token sequences of that vocabulary,
    its config) under `tmp_path/02_mlm_data`, as the benches read them."""

    def make(sst2_train, sst2_dev, train_rows, valid_rows, predictions):
        from nbhelpers import synthetic

        data_dir, mlm_data = tmp_path / "data", tmp_path / "02_mlm_data"
        synthetic.write_synthetic_data(data_dir, seed=7, vocabulary_size=300, sizes={
            "sst2_train": sst2_train, "sst2_dev": sst2_dev, "wiki_train": 20, "wiki_valid": 5, "wiki_test": 5})
        mlm_data.mkdir()
        vocabulary = (data_dir / "vocab" / "vocab.txt").read_text()
        (mlm_data / "vocab.txt").write_text(vocabulary)
        size = len(vocabulary.splitlines())
        rng = np.random.default_rng(0)
        for split, rows in (("train", train_rows), ("valid", valid_rows)):
            np.save(mlm_data / f"{split}_tokens.npy", rng.integers(5, size, size=(rows, 16)).astype("int32"))
        (mlm_data / "config.json").write_text(json.dumps(
            {"vocabulary_size": size, "sequence_length": 16, "predictions_per_sequence": predictions, "mask_rate": 0.2}))
        return data_dir, mlm_data

    return make


@pytest.fixture
def shared_data():
    if not (SHARED_DATA / "sst2" / "dev.tsv").is_file():
        pytest.skip(f"real data not present at {SHARED_DATA} (only on the project's machines)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_series(tmp_path_factory):
    """The five notebooks run once with the tiny profile: `(artifacts folder, executed notebooks)`."""
    from nbhelpers.run import load_profile, notebook_paths, run_series

    artifacts = tmp_path_factory.mktemp("tiny_series")
    return artifacts, run_series(notebook_paths(), load_profile("tiny"), artifacts)



# Tests that must run on one pytest-xdist worker, in order (`make test` runs two workers):
# nbval's cells run in one kernel per notebook, and notebook 02 reads what 01 wrote into the
# repository's artifacts folder; the `tiny_series` fixture runs the whole series once per worker.
SHARED_STATE_SCOPES = {
    "notebooks/": "the notebooks under nbval",
    "tests/test_notebooks.py": "the tiny series",
    "tests/test_resume.py": "the tiny series",
    "tests/test_fresh_runtime.py": "the fresh runtime",  # one scope only to be collected early
}
LONGEST_FIRST = ("the tiny series", "the notebooks under nbval", "the fresh runtime")


def _shared_state_scope(nodeid):
    return next((scope for prefix, scope in SHARED_STATE_SCOPES.items() if nodeid.startswith(prefix)), None)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadscope` with the scopes above kept whole; every other module is a scope of its own.

    (`--dist loadgroup` with `xdist_group` marks would say the same, but pytest-xdist 3.8 loses
    the groups on pytest 9.2: pytest-dev/pytest-xdist#1386.)
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the collection order below: the longest first

    class SharedStateScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return _shared_state_scope(nodeid) or nodeid.split("::", 1)[0]

    return SharedStateScheduling(config, log)


def pytest_collection_modifyitems(items):
    """Collect the longest scopes first, so that each starts on a worker at once (stable: the
    order within a scope is kept)."""
    def rank(item):
        scope = _shared_state_scope(item.nodeid)
        return LONGEST_FIRST.index(scope) if scope in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


# Makes `import tensorflow` (and tensorflow_text) fail in a child process, as on a machine without
# them (a JAX-only TPU VM or GPU image); Keras and KerasHub still import under JAX there.
NO_TENSORFLOW = '''
import sys
class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ("tensorflow", "tensorflow_text"):
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
sys.meta_path.insert(0, _NoTensorFlow())
'''


@pytest.fixture
def without_tensorflow(tmp_path):
    """The environment for a child process (a papermill kernel too) where TensorFlow does not import:
    a folder with that `sitecustomize.py` first on its `PYTHONPATH`, then this checkout."""
    blocker = tmp_path / "no_tensorflow"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    return {"PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
