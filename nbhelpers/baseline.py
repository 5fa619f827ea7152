"""The guide's bag-of-words baseline: multi-hot word vectors -> one sigmoid unit.

Example:

>>> vectorizer = make_multi_hot_vectorizer(train_sentences, max_tokens=4000)
>>> train = multi_hot_dataset(vectorizer, train_sentences, train_labels, 32, shuffle_seed=0)
>>> model = build_baseline_model(vectorizer.vocabulary_size())
>>> text_model = build_text_baseline(vectorizer, model)  # after training: raw strings in
>>> text_model.save("bag_of_words.keras")
"""

import keras
import numpy as np
import tensorflow as tf


def make_multi_hot_vectorizer(train_sentences, max_tokens=4000):
    """A `TextVectorization` layer adapted on the training sentences, giving multi-hot vectors."""
    vectorizer = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode="multi_hot")
    vectorizer.adapt(tf.constant(list(train_sentences)))
    return vectorizer


def multi_hot_dataset(vectorizer, sentences, labels, batch_size, shuffle_seed=None):
    """A `tf.data` pipeline of `(multi_hot, label)` batches; shuffled each epoch if a seed is given."""
    dataset = tf.data.Dataset.from_tensor_slices((list(sentences), np.asarray(labels, "float32")))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(sentences), seed=shuffle_seed)
    dataset = dataset.batch(batch_size).map(lambda text, label: (vectorizer(text), label))
    return dataset.prefetch(tf.data.AUTOTUNE)


def build_baseline_model(vocabulary_size):
    """Logistic regression on the multi-hot vector: `(batch, vocabulary_size)` -> `(batch, 1)`.

    Args:
        vocabulary_size: the vectorizer's `vocabulary_size()` (at most its `max_tokens`).
    """
    inputs = keras.Input(shape=(vocabulary_size,), name="multi_hot")
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="sentiment")(inputs)
    return keras.Model(inputs, outputs, name="bag_of_words")


def build_text_baseline(vectorizer, baseline):
    """The trained baseline with its vectorizer inside: `(batch,)` strings -> `(batch, 1)` probability.

    Saved as a `.keras` file it carries its word list, so notebook 05 can score it on raw text
    beside the exported transformer (on TensorFlow, whose tensors hold strings).

    Args:
        vectorizer: the adapted multi-hot `TextVectorization` layer.
        baseline: the trained model from `build_baseline_model`.
    """
    text = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(text, baseline(vectorizer(text)), name="bag_of_words_from_text")
