"""ELECTRA's replaced-token detection: pretraining that learns from every token, not only the masked ones.

A masked-language model learns from the 20 % of tokens it must predict. ELECTRA (Clark et al.,
2020) adds a small generator, itself a masked-language model, whose guesses replace the masked
tokens; the encoder being pretrained (the discriminator) then says, for every token, whether it
is the original or a replacement. Every position gives a training signal, which the paper
reports as several times more learning per unit of compute at small sizes.

Example:

>>> encoder = build_encoder(vocabulary_size=1000, sequence_length=64, num_layers=3, model_dim=128,
...                         num_heads=2, intermediate_dim=512, dropout=0.0)
>>> generator = build_encoder(vocabulary_size=1000, sequence_length=64, num_layers=1, model_dim=128,
...                           num_heads=2, intermediate_dim=256, dropout=0.0,
...                           embedding=encoder.get_layer("embedding"))  # shared, as in ELECTRA
>>> model = ReplacedTokenDetection(encoder, generator, predictions_per_sequence=13, mask_token_id=4,
...                                unselectable_ids=(0, 2, 3), mask_rate=0.2, seed=1)
>>> model.compile(optimizer="adamw")
>>> history = model.fit(token_ids, batch_size=64, epochs=1)  # int array (n, 64), no labels
>>> sorted(history.history)
['generator_accuracy', 'loss', 'replaced_accuracy']
>>> encoder.save("encoder.keras")  # fine-tune it as any encoder (`build_classifier`)
"""

import keras
from keras import ops

from nbhelpers.accelerator_masking import SelfMaskingMLM, write_at_positions
from nbhelpers.models import PAD_ID, build_pretraining_model


class ReplacedTokenDetection(keras.Model):
    """Trains `encoder` to spot the tokens that a small generator put in place of masked ones.

    Each step, on a batch of raw token ids: masks it as `SelfMaskingMLM` does; the generator
    (an MLM head on `generator_encoder`, tied to its token embedding) predicts the masked tokens
    and learns from its cross-entropy; a token is sampled from its prediction at each masked
    position (no gradient flows through the sample) and written into the original sequence; the
    encoder reads that sequence and a one-unit layer on each position says "replaced or not".
    The loss is the generator's plus `discriminator_weight` times the mean binary cross-entropy
    over the real (non-`[PAD]`) tokens. A sampled token equal to the original counts as original.

    Metrics: `generator_accuracy` (its MLM accuracy on the masked tokens) and `replaced_accuracy`
    (the discriminator's accuracy over all real tokens; about 85-90 % comes from saying
    "original" everywhere, so watch it rise above that).

    Args:
        encoder: the encoder to pretrain, `(batch, length)` ids -> `(batch, length, width)`.
        generator_encoder: a smaller encoder for the generator; ELECTRA shares the token and
            position embedding with `encoder` (`build_encoder(..., embedding=...)`).
        predictions_per_sequence: masked positions per sequence, at most.
        mask_token_id: the id of `[MASK]`.
        unselectable_ids: ids never masked (`[PAD]`, `[CLS]`, `[SEP]`).
        mask_rate: the share of selectable tokens masked (rounded up).
        discriminator_weight: the discriminator loss's weight (ELECTRA: 50).
        seed: an int seed for masks and samples; `None` draws one.
        **kwargs: passed to `keras.Model`.
    """

    def __init__(self, encoder, generator_encoder, predictions_per_sequence, mask_token_id, unselectable_ids,
                 mask_rate, discriminator_weight=50.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.generator = SelfMaskingMLM(
            build_pretraining_model(generator_encoder, predictions_per_sequence, activation=None, head_dtype=None),
            mask_token_id=mask_token_id, unselectable_ids=unselectable_ids, mask_rate=mask_rate, seed=seed,
            from_logits=True,
        )
        self.detector = keras.layers.Dense(1, dtype="float32", name="replaced_token_detector")
        self.discriminator_weight = float(discriminator_weight)
        self.sample_seed = keras.random.SeedGenerator(None if seed is None else seed + 1)
        self.generator_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.generator_accuracy = keras.metrics.SparseCategoricalAccuracy(name="generator_accuracy")
        self.replaced_accuracy = keras.metrics.BinaryAccuracy(name="replaced_accuracy", threshold=0.0)

    def build(self, input_shape=None):
        # The encoders are built; the detector reads their output width.
        self.detector.build((None, None, self.encoder.output.shape[-1]))
        self.built = True

    def call(self, token_ids, training=False):
        """Mask, generate, replace and detect. Returns the tensors the loss and metrics need."""
        token_ids = ops.cast(token_ids, "int32")
        masked = self.generator.mask(token_ids)
        logits = self.generator.pretrainer(
            {"token_ids": masked["token_ids"], "mask_positions": masked["mask_positions"]}, training=training
        )
        batch, slots, vocabulary = ops.shape(logits)[0], ops.shape(logits)[1], ops.shape(logits)[2]
        flat = ops.reshape(ops.stop_gradient(ops.cast(logits, "float32")), (batch * slots, vocabulary))
        sampled = ops.reshape(keras.random.categorical(flat, 1, seed=self.sample_seed), (batch, slots))
        corrupted = write_at_positions(token_ids, masked["mask_positions"], masked["mask_weights"] > 0, sampled)
        detected = self.detector(self.encoder(corrupted, training=training))[:, :, 0]
        return {
            "generator_logits": logits, "mask_ids": masked["mask_ids"], "mask_weights": masked["mask_weights"],
            "detector_logits": detected,
            "replaced": ops.cast(ops.not_equal(corrupted, token_ids), "float32"),
            "real": ops.cast(ops.not_equal(token_ids, PAD_ID), "float32"),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # The labels are made in `call`; `y` and `sample_weight` from `fit` are unused.
        generator = self.generator_loss(y_pred["mask_ids"], y_pred["generator_logits"],
                                        sample_weight=y_pred["mask_weights"])
        per_token = ops.binary_crossentropy(y_pred["replaced"], y_pred["detector_logits"], from_logits=True)
        real = y_pred["real"]
        discriminator = ops.sum(per_token * real) / ops.maximum(ops.sum(real), 1.0)
        return generator + self.discriminator_weight * discriminator

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.generator_accuracy.update_state(y_pred["mask_ids"], y_pred["generator_logits"],
                                             sample_weight=y_pred["mask_weights"])
        self.replaced_accuracy.update_state(y_pred["replaced"], y_pred["detector_logits"],
                                            sample_weight=y_pred["real"])
        return self.get_metrics_result()

    def save_own_variables(self, store):
        # As SelfMaskingMLM: keep the sampling seed's state for a resumed run.
        super().save_own_variables(store)
        store["sample_seed_state"] = self.sample_seed.state

    def load_own_variables(self, store):
        if "sample_seed_state" in store:
            self.sample_seed.state.assign(store["sample_seed_state"])
