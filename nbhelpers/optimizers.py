"""`FusedAdamW`: Keras's AdamW, with its update done by TensorFlow's one-pass Adam kernel.

Keras 3 writes Adam's update of a variable as about a dozen element-wise ops (each a pass over
the variable and its two moments) and AdamW's weight decay as three more. Fine-tuning the
guide's encoder on short sentences updates 4.5M parameters a step, 3.9M of them in the token
embedding, for little compute: on 2 CPU cores those passes were about a third of the step's
kernel time. On the TensorFlow backend this optimizer runs the same update with TensorFlow's
fused `ResourceApplyAdam` kernel (one pass) and the decay as one multiply. On JAX, which
compiles the whole step with XLA and so fuses those ops already, and on PyTorch, it is Keras's
AdamW.

The embedding's sparse gradient is summed into a dense one first, so a token that occurs
several times in a batch gets Adam's update of its summed gradient, as on JAX. (Keras's AdamW on
TensorFlow squares each occurrence's gradient on its own, so its second moment for such rows
differs: see `tests/test_optimizers.py`.)

Example:

>>> optimizer = FusedAdamW(learning_rate=1e-4)  # AdamW's arguments and defaults
>>> optimizer.weight_decay
0.004
"""

import keras


@keras.saving.register_keras_serializable(package="nbhelpers")
class FusedAdamW(keras.optimizers.AdamW):
    """AdamW (decoupled weight decay) that updates each variable in one pass on TensorFlow.

    The same update as `keras.optimizers.AdamW` up to float rounding: the variable is first
    scaled by `1 - learning_rate * weight_decay` (unless excluded from weight decay), then takes
    Adam's step. Takes `keras.optimizers.AdamW`'s arguments; `amsgrad=True` uses Keras's update.
    """

    def _fused(self):
        return keras.backend.backend() == "tensorflow" and not self.amsgrad

    def _apply_weight_decay(self, variables):
        if not self._fused():
            super()._apply_weight_decay(variables)
        # On TensorFlow the decay is applied in `update_step`, with the variable's update.

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused():
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        learning_rate = tf.cast(learning_rate, dtype)
        if self.weight_decay and self._use_weight_decay(variable):
            variable.assign(variable * (1 - learning_rate * tf.cast(self.weight_decay, dtype)))
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=learning_rate,
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.convert_to_tensor(gradient),  # a sparse (embedding) gradient is summed into a dense one
        )
