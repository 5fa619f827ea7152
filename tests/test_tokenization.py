import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.tokenization import (
    classification_dataset,
    make_tokenizer,
    tokenize_texts,
    unknown_token_rate,
)


def test_tokenizer_ids_on_a_hand_written_vocabulary(hand_vocabulary):
    tokenizer = make_tokenizer(hand_vocabulary, sequence_length=8)
    ids = tokenize_texts(tokenizer, ["The FILMS was góod.", "not a Café"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [
        [5, 6, 12, 7, 8, 13, 0, 0],  # the film ##s was good .
        [10, 14, 11, 0, 0, 0, 0, 0],  # not a cafe (accent stripped)
    ]


def test_unknown_words_and_truncation(hand_vocabulary):
    tokenizer = make_tokenizer(hand_vocabulary, sequence_length=3)
    ids = tokenize_texts(tokenizer, ["the zebra was good bad"])
    assert ids.tolist() == [[5, 1, 7]]
    assert unknown_token_rate(tokenizer, ids) == 1 / 3


def test_tokenizer_gives_the_same_ids_directly_and_inside_tf_data(hand_vocabulary):
    tokenizer = make_tokenizer(hand_vocabulary, sequence_length=6)
    texts = ["the film was good", "a bad film .", ""]
    direct = np.asarray(tokenizer(tf.constant(texts)))
    mapped = next(iter(tf.data.Dataset.from_tensor_slices(texts).batch(3).map(tokenizer))).numpy()
    np.testing.assert_array_equal(direct, mapped)
    np.testing.assert_array_equal(direct, tokenize_texts(tokenizer, texts))


def test_classification_dataset_batches_and_keeps_order_without_seed():
    tokens = np.arange(20, dtype="int32").reshape(10, 2)
    labels = [i % 2 for i in range(10)]
    batches = list(classification_dataset(tokens, labels, batch_size=4))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), tokens)
    shuffled = np.concatenate([x for x, _ in classification_dataset(tokens, labels, 4, shuffle_seed=1)])
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, tokens))


def test_pack_texts_joins_texts_with_separators_into_full_sequences(hand_vocabulary):
    from nbhelpers.tokenization import pack_texts

    tokenizer = make_tokenizer(hand_vocabulary, sequence_length=4)
    packed = pack_texts(tokenizer, ["the film", "a bad film was good", "the"])
    the, film, sep = (tokenizer.token_to_id(t) for t in ("the", "film", "[SEP]"))
    expected_stream = np.concatenate([tokenize_texts(make_tokenizer(hand_vocabulary, 8), [t])[0][:n].tolist() + [sep]
                                      for t, n in (("the film", 2), ("a bad film was good", 5), ("the", 1))])
    assert packed.shape == (3, 4) and packed.dtype == np.int32
    np.testing.assert_array_equal(packed.reshape(-1)[: len(expected_stream)], expected_stream)
    assert packed.reshape(-1)[len(expected_stream):].tolist() == [0]  # only the tail is padded
    assert packed[0, :3].tolist() == [the, film, sep]


def test_compute_vocabulary_fits_the_text_and_starts_with_the_special_tokens():
    from nbhelpers.tokenization import compute_vocabulary

    texts = ["The Café was wonderful", "a wonderful film", "the film was dull"] * 20
    vocabulary = compute_vocabulary(texts, 60)
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocabulary) <= 60 and {"the", "cafe", "wonderful", "film"} <= set(vocabulary)
    tokenizer = make_tokenizer(vocabulary, sequence_length=8)
    assert unknown_token_rate(tokenizer, tokenize_texts(tokenizer, texts)) == 0


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


def test_repeated_epochs_are_whole_passes_each_reshuffled():
    from nbhelpers.training import repeated_epochs

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
