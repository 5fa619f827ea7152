"""MLM accuracy over the masked targets that are real words, not `[UNK]`.

An `[UNK]` target is easy to guess (a vocabulary that fits the corpus badly makes many of
them), so the plain MLM accuracy flatters such a vocabulary. This metric leaves them out.

Example:

>>> metric = KnownTokenAccuracy(unknown_id=1)
>>> metric.update_state([[1, 5]], [[[0.0, 1.0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1.0]]], [[1.0, 1.0]])
>>> float(metric.result())  # the [UNK] target (right or wrong) does not count
1.0
"""

import keras


@keras.saving.register_keras_serializable(package="nbhelpers")
class KnownTokenAccuracy(keras.metrics.Metric):
    """Sparse categorical accuracy over targets other than `unknown_id`, with sample weights.

    Args:
        unknown_id: the id of `[UNK]`.
        name: the metric's name in logs (`val_` is prefixed for validation).
    """

    def __init__(self, unknown_id, name="known_token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.unknown_id = unknown_id
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(keras.ops.convert_to_tensor(y_true), "int32")
        predicted = keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32")
        weight = keras.ops.cast(keras.ops.not_equal(y_true, self.unknown_id), "float32")
        if sample_weight is not None:
            weight = weight * keras.ops.cast(sample_weight, "float32")
        hits = keras.ops.cast(keras.ops.equal(predicted, y_true), "float32") * weight
        self.correct.assign_add(keras.ops.sum(hits))
        self.total.assign_add(keras.ops.sum(weight))

    def result(self):
        return self.correct / keras.ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "unknown_id": self.unknown_id}
