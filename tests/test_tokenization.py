import numpy as np
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
