"""Training helpers: one iterator over repeated epochs."""

import numpy as np
import pytest

from nbhelpers.batches import classification_dataset
from nbhelpers.training import repeated_epochs


def test_repeated_epochs_are_whole_passes_each_reshuffled():
    ids = np.zeros((100, 32), "int32")
    for row in range(100):
        ids[row, : 1 + row % 30] = 5 + row  # the first token tells the sentences apart
    dataset = classification_dataset(ids, np.arange(100) % 2, 8, shuffle_seed=3, bucketed=True)
    repeated, steps = repeated_epochs(dataset)
    assert steps == len(list(dataset))
    firsts = [int(row[0]) - 5 for batch, _ in repeated.take(2 * steps) for row in batch.numpy()]
    first_pass, second_pass = firsts[:100], firsts[100:]
    assert sorted(first_pass) == sorted(second_pass) == list(range(100)) and first_pass != second_pass
    with pytest.raises(ValueError, match="length is unknown"):
        repeated_epochs(dataset.filter(lambda ids, label: True))
