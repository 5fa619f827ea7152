"""The three tasks' datasets: the `tf.data` pipelines, and their NumPy counterparts for machines without
TensorFlow (equal to what `tf.data` gives: checked here, where TensorFlow is installed)."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from nbhelpers.baseline import sentence_words, split_rows
from nbhelpers.batches import NumpyBatches, bucketed_batches, classification_batches, classification_dataset, mlm_dataset
from nbhelpers.masking import make_mask_generator
from nbhelpers.tokenization import bucket_lengths, make_tokenizer
from nbhelpers.training import repeated_epochs


def _token_ids(rows=203, length=64, seed=0):
    # Right-padded rows of every length from 0 to `length`, most of them short (as SST-2's phrases).
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(0.08, size=rows), length)
    lengths[:3] = (0, 1, length)
    ids = rng.integers(5, 100, size=(rows, length)).astype("int32")
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return ids, rng.integers(0, 2, size=rows)


def _as_lists(batches):
    return [(np.asarray(x).tolist(), np.asarray(y).tolist()) for x, y in batches]


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_numpy_bucketing_gives_tf_datas_batches_for_the_same_order(drop_remainder):
    ids, labels = _token_ids()
    ours = bucketed_batches(ids, labels, batch_size=8, drop_remainder=drop_remainder)
    theirs = classification_dataset(ids, labels, 8, bucketed=True, drop_remainder=drop_remainder)
    assert _as_lists(ours) == _as_lists(theirs)  # the same rows, in the same batches, padded alike
    assert len(ours) == int(theirs.cardinality())
    assert {np.asarray(x).shape[1] for x, _ in ours} <= set(bucket_lengths(64))
    # Not bucketed: tf.data's batch(), the last smaller batch kept unless dropped.
    plain = classification_dataset(ids, labels, 8, drop_remainder=drop_remainder)
    assert _as_lists(NumpyBatches((ids, labels.astype("float32")), _plain_plan(8, drop_remainder))) == _as_lists(plain)


def _plain_plan(batch_size, drop_remainder):
    import functools

    from nbhelpers.batches import in_order

    return functools.partial(in_order, batch_size, drop_remainder, 64)


def test_shuffled_numpy_passes_hold_every_row_once_in_a_new_seeded_order():
    ids, labels = _token_ids()
    batches = bucketed_batches(ids, labels, batch_size=8, shuffle_seed=3)
    endless, steps = repeated_epochs(batches)
    assert steps == int(classification_dataset(ids, labels, 8, bucketed=True).cardinality())
    passes = [[next(endless) for _ in range(steps)] for _ in range(2)]
    for one_pass in passes:
        rows = np.concatenate([np.pad(x, ((0, 0), (0, 64 - x.shape[1]))) for x, _ in one_pass])
        assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, ids.tolist()))  # each row once, unchanged
        for x, y in one_pass:
            assert x.dtype == np.int32 and y.dtype == np.float32 and len(x) <= 8
            real = np.max(np.where(x != 0, np.arange(1, x.shape[1] + 1), 0))
            assert x.shape[1] == bucket_lengths(64)[np.searchsorted(bucket_lengths(64), real)]
    assert _as_lists(passes[0]) != _as_lists(passes[1])  # a new order each pass
    again, _ = repeated_epochs(bucketed_batches(ids, labels, batch_size=8, shuffle_seed=3))
    assert _as_lists([next(again) for _ in range(steps)]) == _as_lists(passes[0])  # seeded


def test_classification_batches_are_tf_datas_where_tensorflow_is_installed():
    ids, labels = _token_ids()
    assert type(classification_batches(ids, labels, 8, bucketed=True)).__module__.startswith("tensorflow")


def test_the_package_imports_without_tensorflow_and_notebook_02_says_it_needs_it(without_tensorflow):
    script = """if True:
        import json, sys
        import nbhelpers, keras, keras_hub
        import nbhelpers.batches, nbhelpers.label_budget, nbhelpers.models, nbhelpers.training
        from nbhelpers.tokenization import make_tokenizer
        tokenizer = make_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film"], 4)
        try:
            nbhelpers.require_tensorflow("02")
        except ImportError as error:
            message = str(error)
        print(json.dumps({"backend": keras.backend.backend(), "tensorflow": "tensorflow" in sys.modules,
                          "available": nbhelpers.tensorflow_available(), "tokens": tokenizer(["The FILM"]).tolist(),
                          "message": message}))
    """
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", script], env={**env, **without_tensorflow},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Where TensorFlow is missing, JAX is the default backend; keras-hub's tokenizer works in Python.
    assert result == {"backend": "jax", "tensorflow": False, "available": False, "tokens": [[5, 6, 0, 0]],
                      "message": "Notebook 02 needs TensorFlow (pip install tensorflow tensorflow-text); "
                                 "notebooks 03 and 04 run without it under KERAS_BACKEND=jax."}


def test_self_masking_mlm_compiles_as_the_pretraining_model_with_its_metrics():
    """Notebook 03 compiles it as its pretraining model: the same loss and accuracy as compiled bare."""
    import keras

    from nbhelpers.masking import SelfMaskingMLM
    from nbhelpers.metrics import MaskedTokenAccuracy
    from nbhelpers.models import build_encoder, build_pretraining_model

    ids = np.random.default_rng(0).integers(1, 60, size=(32, 16)).astype("int32")  # [UNK] (1) among them
    results = []
    for compiled_as_pretrainer in (False, True):
        keras.utils.set_random_seed(0)
        encoder = build_encoder(60, 16, num_layers=1, model_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0)
        model = SelfMaskingMLM(build_pretraining_model(encoder, 4), mask_token_id=4, unselectable_ids=(0, 2, 3),
                               mask_rate=0.2, seed=1)
        if compiled_as_pretrainer:
            model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                          weighted_metrics=[MaskedTokenAccuracy(name="sparse_categorical_accuracy"),
                                            MaskedTokenAccuracy(ignore_id=1, name="known_token_accuracy")])
        else:
            model.compile(optimizer="sgd")
        results.append(model.evaluate(ids, batch_size=16, verbose=0, return_dict=True))
    bare, as_pretrainer = results
    assert sorted(bare) == ["loss", "sparse_categorical_accuracy"]
    assert sorted(as_pretrainer) == ["known_token_accuracy", "loss", "sparse_categorical_accuracy"]
    assert as_pretrainer["loss"] == pytest.approx(bare["loss"], rel=1e-6)
    assert as_pretrainer["sparse_categorical_accuracy"] == pytest.approx(bare["sparse_categorical_accuracy"])
    with pytest.raises(ValueError, match="SelfMaskingMLM's loss is built in"):
        model.compile(loss="mse", optimizer="adam")


def test_the_curves_bag_of_words_learns_alike_from_numpy_vectors():
    """Notebook 04's bag-of-words arm without TensorFlow: NumPy multi-hot vectors and batches give the
    tf.data arm's validation and dev accuracy within a few sentences (same vectors and initial
    weights; only the order of the batches differs)."""
    from nbhelpers.label_budget import CurveSettings, LabelledSplits, fine_tune_bag_of_words, split_validation
    from nbhelpers.synthetic import NEGATIVE, POSITIVE, sentiment_example

    rng = random.Random(0)
    examples = [sentiment_example(rng, lexicon=(NEGATIVE[:4], POSITIVE[:4])) for _ in range(700)]  # a few words
    sentences, labels = [text for text, _ in examples], [label for _, label in examples]
    words, word_ids, counts = sentence_words(sentences)
    rows = split_rows(word_ids, counts)
    settings = CurveSettings(batch_size=16, learning_rate=1e-3, baseline_max_tokens=300, min_steps=400, patience=3)
    train, validation = split_validation(np.arange(500), labels[:500], seed=0)
    results = []
    for labelled in (LabelledSplits(sentences[:500], labels[:500], sentences[500:], labels[500:]),
                     LabelledSplits(rows[:500], labels[:500], rows[500:], labels[500:], words)):
        results.append(fine_tune_bag_of_words(labelled, train, validation, 0, settings))
    (tf_dev, _, tf_validation), (numpy_dev, _, numpy_validation) = results
    assert tf_dev > 0.6 and numpy_dev > 0.6, results  # both learn the labelled words
    assert abs(tf_dev - numpy_dev) <= 0.04 and abs(tf_validation - numpy_validation) <= 0.06, results


def test_classification_dataset_batches_and_keeps_order_without_seed():
    tokens = np.arange(20, dtype="int32").reshape(10, 2)
    labels = [i % 2 for i in range(10)]
    batches = list(classification_dataset(tokens, labels, batch_size=4))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), tokens)
    shuffled = np.concatenate([x for x, _ in classification_dataset(tokens, labels, 4, shuffle_seed=1)])
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, tokens))


def test_bucketed_batches_pad_only_to_their_bucket_and_keep_every_sentence():
    from nbhelpers.tokenization import bucket_lengths

    assert bucket_lengths(128) == [8, 12, 16, 24, 32, 48, 64, 96, 128]
    assert bucket_lengths(64) == [8, 12, 16, 24, 32, 48, 64] and bucket_lengths(6) == [6]
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 65, size=300)
    ids = np.zeros((300, 64), "int32")
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(5, 50, size=n)
    ids[7, 3] = 0  # an inner [PAD] id does not shorten the sentence
    labels = np.arange(300) % 2
    seen = []
    dataset = classification_dataset(ids, labels, 16, shuffle_seed=1, bucketed=True)
    buckets = bucket_lengths(64)
    assert int(dataset.cardinality()) == len(list(dataset))
    for batch_ids, batch_labels in dataset:
        batch_ids = batch_ids.numpy()
        assert batch_ids.shape[1] in buckets and len(batch_ids) <= 16
        # Every sentence of a batch is too long for the next shorter bucket.
        shorter = ([0] + buckets)[buckets.index(batch_ids.shape[1])]
        lengths = [int(np.max(np.nonzero(row)[0], initial=-1)) + 1 for row in batch_ids]
        assert min(lengths) > shorter or shorter == 0
        seen += [tuple(row) for row in batch_ids]
    padded = {tuple(np.pad(row, (0, 64 - len(row)))) for row in seen}
    assert len(seen) == 300 and padded == {tuple(row) for row in ids}


@pytest.mark.parametrize("bucketed", [True, False])
def test_whole_batches_only_for_devices_that_split_them(bucketed):
    rng = np.random.default_rng(0)
    ids = np.zeros((300, 64), "int32")
    for row, n in enumerate(rng.integers(1, 65, size=300)):
        ids[row, :n] = rng.integers(5, 50, size=n)
    dataset = classification_dataset(ids, np.arange(300) % 2, 16, shuffle_seed=1, bucketed=bucketed, drop_remainder=True)
    sizes = [len(batch_labels) for _, batch_labels in dataset]
    assert int(dataset.cardinality()) == len(sizes) > 0 and set(sizes) == {16}
    # Only the remainders are left out: fewer than a batch per bucket.
    from nbhelpers.tokenization import bucket_lengths

    buckets = len(bucket_lengths(64)) if bucketed else 1
    assert 300 - 16 * buckets < sum(sizes) <= 300


def _tokenizer(hand_vocabulary, length=8):
    return make_tokenizer(hand_vocabulary, sequence_length=length)


def test_each_epoch_draws_new_masks(hand_vocabulary):
    tokenizer = _tokenizer(hand_vocabulary, length=32)
    masker = make_mask_generator(tokenizer, mask_rate=0.3, predictions_per_sequence=10)
    ids = np.full((16, 32), 6, "int32")
    dataset = mlm_dataset(ids, masker, batch_size=16)
    first, second = (next(iter(dataset))[0]["mask_positions"].numpy() for _ in range(2))
    assert not np.array_equal(first, second)


def test_mlm_dataset_drops_the_ragged_last_batch(hand_vocabulary):
    masker = make_mask_generator(_tokenizer(hand_vocabulary), 0.5, 4)
    batches = list(mlm_dataset(np.full((10, 8), 6, "int32"), masker, batch_size=4, shuffle_seed=0))
    assert len(batches) == 2
    features, labels, weights = batches[0]
    assert features["token_ids"].shape == (4, 8) and labels.shape == weights.shape == (4, 4)


def test_the_same_seed_gives_the_same_masks_and_each_pass_new_ones(hand_vocabulary):
    masker = make_mask_generator(_tokenizer(hand_vocabulary, length=32), 0.3, 10)
    ids = np.full((64, 32), 6, "int32")

    def passes(seed):
        dataset = mlm_dataset(ids, masker, batch_size=16, shuffle_seed=0, mask_seed=seed)
        return [np.concatenate([f["mask_positions"].numpy() for f, _, _ in dataset]) for _ in range(2)]

    first, again, other = passes(7), passes(7), passes(8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], other[0])
