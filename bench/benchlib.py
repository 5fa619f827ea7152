"""What the scripts under bench/ share: the guide's encoder variants, ELECTRA, and their records' helpers.

The notebooks' package, `nbhelpers`, builds this project's model; the benchmarks also build the
2022 guide's (attention over `[PAD]`), ELECTRA's generator (sharing the encoder's embedding) and
heads that return logits in the global precision. Those variants are built here, from the
package's own builders. Scripts import this module from beside them
(`sys.path.insert(0, str(Path(__file__).resolve().parent))`; bench/ is no package).

Example:

>>> from nbhelpers.models import build_encoder
>>> encoder = build_encoder(vocabulary_size=100, sequence_length=16, num_layers=1, model_dim=16,
...                         num_heads=2, intermediate_dim=32, dropout=0.0)
>>> guide_encoder = rewire_encoder(encoder, use_padding_mask=False)  # attends to [PAD], as the guide
>>> tuple(guide_encoder(np.zeros((1, 16), "int32")).shape)
(1, 16, 16)
>>> shuffled_passes(4, 6, seed=0).tolist()
[2, 0, 1, 3, 3, 2]
"""

import os
import platform
from pathlib import Path

import keras
import keras_hub
import numpy as np
from keras import ops

from nbhelpers.masking import SelfMaskingMLM, write_at_positions
from nbhelpers.models import EMBEDDING_LAYER, padding_mask
from nbhelpers.tokenization import PAD_ID


def rewire_encoder(encoder, use_padding_mask=True, embedding=None):
    """The layers of an encoder from `nbhelpers.models.build_encoder`, wired into a variant.

    Args:
        encoder: from `build_encoder`; the variant uses its layers (and so its weights).
        use_padding_mask: attention ignores `[PAD]`, as in `build_encoder`; `False` attends to it
            as the 2022 guide did.
        embedding: a `TokenAndPositionEmbedding` used instead of the encoder's own: ELECTRA's
            generator shares the pretrained encoder's. Its sizes must match the encoder's.

    Returns:
        A new `keras.Model` named "encoder": token ids `(batch, length)` -> `(batch, length, width)`.
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = (embedding or encoder.get_layer(EMBEDDING_LAYER))(token_ids)
    x = encoder.get_layer("embedding_norm")(x)
    x = encoder.get_layer("embedding_dropout")(x)
    mask = padding_mask(token_ids) if use_padding_mask else None
    blocks = [layer for layer in encoder.layers if layer.name.startswith("transformer_")]
    for block in blocks:
        x = block(x, padding_mask=mask)
    if any(layer.name == "final_norm" for layer in encoder.layers):  # pre-layer-norm blocks
        x = encoder.get_layer("final_norm")(x)
    return keras.Model(token_ids, x, name="encoder")


def logits_pretraining_model(encoder, predictions_per_sequence):
    """`nbhelpers.models.build_pretraining_model` with a head that returns logits in the global precision.

    Under mixed precision the head returns bfloat16 or float16 logits, which a loss with
    `from_logits=True` turns into a float32 log-softmax: half the bytes of the largest tensor of
    a step (measured on a GPU by `gpu_step.py`). The notebooks' head computes a float32 softmax.
    """
    inputs = {
        "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        "mask_positions": keras.Input(shape=(predictions_per_sequence,), dtype="int32", name="mask_positions"),
    }
    head = keras_hub.layers.MaskedLMHead(
        token_embedding=encoder.get_layer(EMBEDDING_LAYER).token_embedding, activation=None, name="mlm_head"
    )
    outputs = head(encoder(inputs["token_ids"]), mask_positions=inputs["mask_positions"])
    return keras.Model(inputs, outputs, name="mlm_pretraining")


def shuffled_passes(rows, needed, seed):
    """Row indices for `needed` examples: whole passes over `rows` rows end to end, each in a new seeded order.

    For `fit` on an in-memory array with `steps_per_epoch` shorter than a pass: Keras keeps one
    iterator over the array across such epochs and ends an epoch early where it runs dry, so give
    it every step's rows in advance (`fit(array[shuffled_passes(...)], shuffle=False)`).

    >>> shuffled_passes(4, 6, seed=0).tolist()
    [2, 0, 1, 3, 3, 2]
    """
    rng = np.random.default_rng(seed)
    passes = -(-needed // rows)
    return np.concatenate([rng.permutation(rows) for _ in range(passes)])[:needed]


def usable_cores():
    """The CPU cores this process may run on (its affinity, where the OS reports one: right under a
    cgroup or `taskset`, where `os.cpu_count()` counts the whole machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_model():
    """The CPU's model name and the vector extensions that matter here."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return platform.processor()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = fields.get("flags", "").split()
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{fields.get('model name', 'unknown')} ({fields.get('vendor_id', '')}, {' '.join(wanted) or 'no AVX2'})"


def describe_machine():
    """The platform, the CPU model and the cores this process may use, for a benchmark record.

    Ratios measured here differ between CPUs (the guide's long, padded batches gain more from wide
    vector units than our short ones) and with the cores a process may use, so each record names both.

    >>> sorted(describe_machine())
    ['cores', 'cpu', 'platform', 'processor']
    """
    return {"platform": platform.platform(), "processor": platform.processor(), "cpu": cpu_model(),
            "cores": usable_cores()}


# ELECTRA's replaced-token detection: pretraining that learns from every token, not only the masked
# ones. A masked-language model learns from the 20 % of tokens it must predict. ELECTRA (Clark et al.,
# 2020) adds a small generator, itself a masked-language model, whose guesses replace the masked
# tokens; the encoder being pretrained (the discriminator) then says, for every token, whether it is
# the original or a replacement. `replaced_token_curve.py` measures it against MLM pretraining.


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
            position embedding with `encoder` (`rewire_encoder(..., embedding=...)`).
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
            logits_pretraining_model(generator_encoder, predictions_per_sequence),
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
