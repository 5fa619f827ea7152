"""Shared fixtures: a hand-written vocabulary, and the real data when this machine has it."""

from pathlib import Path

import pytest

import nbhelpers  # noqa: F401  (sets the backend and quiet logs before TensorFlow loads)

ROOT = Path(__file__).resolve().parents[1]
# Real copies of SST-2, the BERT vocabulary and corpora, beside the checkout on the project's
# machines (see its README); a user's machine usually has none.
SHARED_DATA = ROOT.parent / "shared" / "data"

HAND_VOCABULARY = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "film", "was", "good", "bad", "not", "cafe", "##s", ".", "a",
]


@pytest.fixture(scope="session")
def hand_vocabulary():
    return list(HAND_VOCABULARY)


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
}
LONGEST_FIRST = ("the tiny series", "the notebooks under nbval")


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
