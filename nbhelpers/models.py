"""The transformer models: the encoder, its MLM pretraining model and the sentiment classifier.

The encoder follows the guide: `TokenAndPositionEmbedding` -> LayerNorm -> Dropout ->
N x `TransformerEncoder`. Unlike the guide, attention and pooling ignore `[PAD]` (id 0)
positions: the padding mask is computed from the token ids inside the model, so it travels
with the saved `.keras` file.

Example:

>>> encoder = build_encoder(vocabulary_size=30522, sequence_length=128, num_layers=3,
...                         model_dim=128, num_heads=2, intermediate_dim=512, dropout=0.1)
>>> pretrainer = build_pretraining_model(encoder, predictions_per_sequence=25)
>>> classifier = build_classifier(encoder)
"""

import keras
import keras_hub

from nbhelpers.tokenization import PAD_ID

EMBEDDING_LAYER = "embedding"


def padding_mask(token_ids):
    """True where a token is real, False at `[PAD]`."""
    return keras.ops.not_equal(token_ids, PAD_ID)


def build_encoder(
    vocabulary_size,
    sequence_length,
    num_layers,
    model_dim,
    num_heads,
    intermediate_dim,
    dropout,
    norm_epsilon=1e-5,
    normalize_first=False,
):
    """The transformer encoder: token ids `(batch, length)` -> vectors `(batch, length, model_dim)`.

    Args:
        vocabulary_size: rows of the token embedding.
        sequence_length: the longest input; shorter inputs work too.
        num_layers: how many `TransformerEncoder` blocks.
        model_dim: the width of every vector.
        num_heads: attention heads per block.
        intermediate_dim: the feed-forward layer's width.
        dropout: dropout rate after the embedding and inside each block.
        norm_epsilon: LayerNorm epsilon.
        normalize_first: pre-layer-norm blocks (LayerNorm before attention and feed-forward,
            and one after the last block) instead of the guide's post-layer-norm. Pre-LN trains
            stably at higher learning rates, so it learns more in a short budget.
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=vocabulary_size,
        sequence_length=sequence_length,
        embedding_dim=model_dim,
        name=EMBEDDING_LAYER,
    )(token_ids)
    x = keras.layers.LayerNormalization(epsilon=norm_epsilon, name="embedding_norm")(x)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    mask = padding_mask(token_ids)
    for index in range(num_layers):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            dropout=dropout,
            layer_norm_epsilon=norm_epsilon,
            normalize_first=normalize_first,
            name=f"transformer_{index}",
        )(x, padding_mask=mask)
    if normalize_first:
        # Pre-LN blocks leave the residual stream unnormalised; the heads expect normalised vectors.
        x = keras.layers.LayerNormalization(epsilon=norm_epsilon, name="final_norm")(x)
    return keras.Model(token_ids, x, name="encoder")


def encoder_from_config(config, vocabulary_size):
    """A new, randomly initialised encoder with the architecture recorded in notebook 03's config."""
    return build_encoder(
        vocabulary_size=vocabulary_size, sequence_length=config["sequence_length"],
        num_layers=config["num_layers"], model_dim=config["model_dim"], num_heads=config["num_heads"],
        intermediate_dim=config["intermediate_dim"], dropout=config["dropout"],
        normalize_first=config.get("normalize_first", False),
    )


def pretrainer_from_config(config, vocabulary_size, weights=None, activation="softmax"):
    """Notebook 03's MLM model rebuilt from its config, with its saved weights when `weights` is a path."""
    pretrainer = build_pretraining_model(
        encoder_from_config(config, vocabulary_size), config["predictions_per_sequence"], activation=activation
    )
    if weights is not None:
        pretrainer.load_weights(weights)
    return pretrainer


def build_pretraining_model(encoder, predictions_per_sequence, activation="softmax"):
    """The MLM model: the encoder plus a `MaskedLMHead` tied to the encoder's token embedding.

    Inputs are `{"token_ids", "mask_positions"}`; the output is a softmax over the vocabulary
    at each masked position, shape `(batch, predictions_per_sequence, vocabulary_size)`
    (logits with `activation=None`). The head computes in float32 under mixed precision, as a
    softmax over the vocabulary needs.

    Keep its state with `save_weights` (as `BackupAndRestore` does), not `save`: Keras
    deserializes the head's `token_embedding` as a new, untied layer and cannot load it. The
    encoder alone saves and loads as a `.keras` file.
    """
    inputs = {
        "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        "mask_positions": keras.Input(
            shape=(predictions_per_sequence,), dtype="int32", name="mask_positions"
        ),
    }
    encoded = encoder(inputs["token_ids"])
    head = keras_hub.layers.MaskedLMHead(
        token_embedding=encoder.get_layer(EMBEDDING_LAYER).token_embedding,
        activation=activation,
        dtype="float32",
        name="mlm_head",
    )
    outputs = head(encoded, mask_positions=inputs["mask_positions"])
    return keras.Model(inputs, outputs, name="mlm_pretraining")


def masked_mean(vectors, mask):
    """The mean of `vectors` over the positions where `mask` is True; zeros if there are none.

    (`GlobalAveragePooling1D` with a mask divides by zero for an all-`[PAD]` input, such as an
    empty string, and returns NaN.)
    """
    weights = keras.ops.expand_dims(keras.ops.cast(mask, vectors.dtype), -1)
    total = keras.ops.sum(vectors * weights, axis=1)
    return total / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)


def build_classifier(encoder):
    """The fine-tuning model: encoder -> mean over real (non-`[PAD]`) tokens -> sigmoid."""
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    encoded = encoder(token_ids)
    pooled = masked_mean(encoded, padding_mask(token_ids))
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="sentiment")(pooled)
    return keras.Model(token_ids, outputs, name="sentiment_classifier")
