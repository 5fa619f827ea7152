"""The exported model: raw strings in, probability of positive sentiment out.

The tokenizer is a layer inside the model, so the saved `.keras` file carries its vocabulary
and needs no separate preprocessing. Text longer than the model's sequence length is truncated
to its first `sequence_length` WordPiece tokens; an empty string gets the prediction for no
tokens at all.

Usage (names as in the notebooks):

    model = build_text_model(tokenizer, classifier)
    model.save("sentiment.keras")
    reloaded = load_text_model("sentiment.keras")
    predict_texts(reloaded, ["a wonderful film", "a dull film"])

With `WITH_BAG_OF_WORDS` notebook 05 exports `average_text_models([model, bag_of_words])`
instead: the mean of the transformer's and notebook 01's bag of words' probabilities.
"""

import logging

import keras
import keras_hub  # noqa: F401  (registers keras-hub layers for loading)
import numpy as np
import tensorflow as tf

from nbhelpers.baseline import BAG_OF_WORDS_FEATURES

# The out-of-domain check's name for the exported model where it averages the transformer and the
# bag of words (the other two are scored alone beside it).
EXPORTED_MEAN = "exported (their mean)"

# Predicting this many texts per call keeps memory flat and the per-call overhead small.
PREDICT_BATCH = 512


def build_text_model(tokenizer, classifier):
    """Wrap a token-id classifier with its tokenizer: `(batch,)` strings -> `(batch, 1)` probability."""
    text = keras.Input(shape=(), dtype="string", name="text")
    token_ids = tokenizer(text)
    # A classifier saved as `keras.Model(inputs=[...])` expects a list of one: pass what it expects,
    # or Keras warns on every call of the text model.
    probability = classifier([token_ids] if isinstance(classifier.input, list) else token_ids)
    if isinstance(probability, (list, tuple)):
        probability = probability[0]
    return keras.Model(text, probability, name="sentiment_from_text")


def average_text_models(text_models, name="sentiment_from_text"):
    """One raw-text model whose probability is the mean of several raw-text models' (an ensemble).

    The transformer and a bag of words make different mistakes, most of all outside the domain
    they were trained on, so their mean is right more often than the transformer alone
    (docs/results/out-of-domain.md). The result saves, reloads and exports as one model.

    Args:
        text_models: raw-text models, each `(batch,)` strings -> `(batch, 1)` probability.
        name: the new model's name.

    Example:

    >>> import keras, numpy as np
    >>> def constant(value):  # a stand-in raw-text model that always answers `value`
    ...     text = keras.Input(shape=(), dtype="string")
    ...     return keras.Model(text, keras.layers.Lambda(lambda t: keras.ops.full((keras.ops.shape(t)[0], 1), value))(text))
    >>> both = average_text_models([constant(0.2), constant(0.6)])
    >>> [round(float(p), 3) for p in predict_texts(both, ["any text", "another"])]
    [0.4, 0.4]
    """
    if len(text_models) < 2:
        raise ValueError(f"average_text_models needs two or more models to average, got {len(text_models)}.")
    text = keras.Input(shape=(), dtype="string", name="text")
    probability = keras.layers.Average(name="mean_probability")([model(text) for model in text_models])
    return keras.Model(text, probability, name=name)


def load_text_model(path):
    """Load a model saved by `build_text_model(...).save(path)`."""
    return keras.models.load_model(path)


# The name of the SavedModel's output: what a serving client (TF Serving's REST API, a
# signature call) reads the probability by, rather than Keras's default "output_0".
SERVING_OUTPUT = "probability"


def export_saved_model(model, path):
    """Write a TensorFlow SavedModel whose `serve` signature maps a string batch to probabilities.

    Its output is named `SERVING_OUTPUT` ("probability"), its input "text". Load it without Keras:
    `tf.saved_model.load(path).serve(tf.constant(["text"]))["probability"]`.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda text: {SERVING_OUTPUT: model(text, training=False)},
        input_signature=[tf.TensorSpec(shape=(None,), dtype=tf.string, name="text")],
    )
    # In a notebook TensorFlow's logger shows INFO ("Assets written to: <path>"); warnings still show.
    tensorflow_logger = logging.getLogger("tensorflow")
    level = tensorflow_logger.level
    tensorflow_logger.setLevel(logging.WARNING)
    try:
        archive.write_out(str(path), verbose=False)
    finally:
        tensorflow_logger.setLevel(level)


def predict_texts(model, texts, batch_size=PREDICT_BATCH):
    """Probabilities of positive sentiment for a list of strings, as a float32 array.

    Args:
        model: a raw-text model (`.keras`), or a loaded SavedModel (its `serve` is used).
        texts: a list of str.
        batch_size: texts per call.
    """
    call = (lambda batch: _served(model, batch)) if hasattr(model, "serve") else (lambda batch: model(batch, training=False))
    outputs = [
        np.asarray(call(tf.constant(texts[start : start + batch_size], dtype=tf.string))).reshape(-1)
        for start in range(0, len(texts), batch_size)
    ]
    return np.concatenate(outputs).astype("float32") if outputs else np.zeros(0, "float32")


def out_of_domain_section(scores):
    """The model card's "How it does outside films" section, from `score_out_of_domain`'s result or None.

    Args:
        scores: `{"sets": ..., "all": ...}` as `nbhelpers.out_of_domain.score_out_of_domain`
            returns it, or None when the data folder held no out-of-domain set.
    """
    heading = "## How it does outside films\n"
    if not scores:
        return heading + """Not measured: the data folder held no labelled sentences from outside films. Fetch Hu & Liu's
product reviews into it (`python -m nbhelpers.acquire --data-dir DATA_DIR product_reviews_1
product_reviews_2`) or add your own `sentiment/*.tsv` (`sentence<TAB>label`, label 0 or 1), then
run notebook 05 again. A model fine-tuned on film reviews alone can do much worse on other text."""
    names = list(scores["all"]["accuracy"])
    models = ("*Transformer* is this model's transformer alone, *bag of words* notebook 01's baseline trained\n"
              f"on the same SST-2 labels, *{EXPORTED_MEAN}* this model" if EXPORTED_MEAN in names else
              "*Transformer* is this model, *bag of words* notebook 01's baseline trained on the same SST-2\nlabels")
    rows = [f"| {name} | {summary['examples']:,} | {summary['positive'] / summary['examples']:.1%} | "
            f"{summary['majority_class_accuracy']:.4f} | "
            + " | ".join(f"{summary['accuracy'][n]:.4f}" for n in names) + " |"
            for name, summary in [*scores["sets"].items(), ("all together", scores["all"])]]
    return heading + f"""Accuracy, zero-shot, on labelled sentences from other domains in the data folder's `sentiment/`
(file by file, then pooled). Nothing was trained or tuned on them. {models}, and *majority class*
always answers the set's commoner label.

| set | sentences | positive | majority class | {" | ".join(names)} |
|---|---|---|---|{"---|" * len(names)}
""" + "\n".join(rows)


def _served(saved_model, batch):
    """A SavedModel's probabilities: its output is named (a dict), or a bare tensor where it was
    exported before the output had a name."""
    output = saved_model.serve(batch)
    return output[SERVING_OUTPUT] if isinstance(output, dict) else output


def write_model_card(path, config, metrics):
    """Write a Markdown model card: what the model is, how it was trained, how well, how to load it.

    It names no path of the machine that trained the model: the data as its folder's name and
    its files' SHA-256 (`config["data_folder"]`, `config["data_checksums"]`).

    Args:
        path: the card's file.
        config: notebook 04's config.json, with `vocabulary_size`, and `with_bag_of_words` where the
            model averages the transformer with the bag of words.
        metrics: notebook 05's metrics (`dev_accuracy`, `max_difference_vs_classifier`; with the bag
            of words also `transformer_dev_accuracy`), and "out_of_domain"
            (`nbhelpers.out_of_domain.score_out_of_domain`'s result) where measured; without it the
            card says the check was not measured.
    """
    model_keys = ("num_layers", "model_dim", "num_heads", "intermediate_dim", "dropout")
    training_keys = (
        "sequence_length", "mask_rate", "predictions_per_sequence", "pretrain_epochs",
        "pretrain_batch_size", "pretrain_learning_rate", "pretrain_schedule", "finetune_epochs",
        "finetune_batch_size", "finetune_learning_rate", "label_budget", "bucketed", "precision", "seed",
    )
    rows = lambda keys: "\n".join(f"| {k} | {config[k]} |" for k in keys if k in config)  # noqa: E731
    ensemble = transformer_alone = ""
    built_from = "the in-notebook classifier"  # what the export must reproduce
    if config.get("with_bag_of_words"):
        built_from = "the in-notebook classifier and bag of words, averaged"
        features = BAG_OF_WORDS_FEATURES[config.get("baseline_ngrams", 1)]
        ensemble = ("\nThat probability is the mean of the transformer's and of a bag of words' (logistic regression on\n"
                    f"which {features} occur) trained on the same SST-2 labels: together they do better than the\n"
                    "transformer alone, on SST-2 and outside films.")
        transformer_alone = f"\n| SST-2 dev accuracy, the transformer alone | {metrics['transformer_dev_accuracy']:.4f} |"
    # Where the data came from without a path of the training machine: the folder's name, and
    # each file's checksum (a reader can check a copy of the data against them).
    checksums = "\n".join(f"| `{name}` | `{digest}` |" for name, digest in sorted(config.get("data_checksums", {}).items()))
    text = f"""# Sentiment model (SST-2), pretrained from scratch

A small transformer encoder pretrained with masked language modelling, then fine-tuned to say
whether a sentence is positive. Input: raw text (any string; longer text is truncated to the first
{config["sequence_length"]} WordPiece tokens). Output: the probability that it is positive.{ensemble}

## Files
- `sentiment.keras`: the Keras model, tokenizer inside (vocabulary of {config["vocabulary_size"]:,} tokens).
- `saved_model/`: the same as a TensorFlow SavedModel with a `serve` signature (strings in).

## How to load
```python
import keras, keras_hub, tensorflow as tf    # keras_hub registers the tokenizer layer
model = keras.models.load_model("sentiment.keras")
model(tf.constant(["What a wonderful film!"]))           # [[probability of positive]]

tf.saved_model.load("saved_model").serve(tf.constant(["What a wonderful film!"]))["probability"]
```
From a shell: `python -m nbhelpers.predict sentiment.keras "What a wonderful film!"`.

## Metrics
| metric | value |
|---|---|
| SST-2 dev accuracy | {metrics["dev_accuracy"]:.4f} |{transformer_alone}
| max probability difference, exported vs {built_from} (dev set) | {metrics["max_difference_vs_classifier"]:.2e} |

{out_of_domain_section(metrics.get("out_of_domain"))}

## Model
| setting | value |
|---|---|
{rows(model_keys)}

## Training
| setting | value |
|---|---|
{rows(training_keys)}

## Data
The data folder `{config.get("data_folder")}`{" (the project's embedded synthetic data)" if config.get("data_folder") == "synthetic" else ""}.
Pretraining corpus: `{config.get("corpus", "wikitext")}`. Vocabulary: `{config.get("vocabulary", "vocab.txt")}`.

| file | SHA-256 |
|---|---|
{checksums}
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
