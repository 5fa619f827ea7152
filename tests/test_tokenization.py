import numpy as np
import tensorflow as tf

from nbhelpers.tokenization import (
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
