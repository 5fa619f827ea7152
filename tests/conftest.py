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
