"""The exported model: raw strings in, probability of positive sentiment out.

The tokenizer is a layer inside the model, so the saved `.keras` file carries its vocabulary
and needs no separate preprocessing.

Example:

>>> model = build_text_model(tokenizer, classifier)
>>> model.save("sentiment.keras")
>>> reloaded = load_text_model("sentiment.keras")
>>> predict_texts(reloaded, ["a wonderful film", "a dull film"])
array([0.93, 0.08], dtype=float32)
"""

import keras
import keras_hub  # noqa: F401  (registers keras-hub layers for loading)
import numpy as np
import tensorflow as tf


def build_text_model(tokenizer, classifier):
    """Wrap a token-id classifier with its tokenizer: `(batch,)` strings -> `(batch, 1)` probability."""
    text = keras.Input(shape=(), dtype="string", name="text")
    probability = classifier(tokenizer(text))
    return keras.Model(text, probability, name="sentiment_from_text")


def load_text_model(path):
    """Load a model saved by `build_text_model(...).save(path)`."""
    return keras.models.load_model(path)


def predict_texts(model, texts, batch_size=256):
    """Probabilities of positive sentiment for a list of strings, as a float32 array."""
    outputs = [
        np.asarray(model(tf.constant(texts[start : start + batch_size]), training=False)).reshape(-1)
        for start in range(0, len(texts), batch_size)
    ]
    return np.concatenate(outputs).astype("float32") if outputs else np.zeros(0, "float32")
