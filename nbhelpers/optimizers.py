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

With `lazy_sparse_updates=True` a sparse gradient updates only its own rows, as TensorFlow
Addons' `LazyAdam` and PyTorch's `SparseAdam` do: a batch of 32 sentences holds a few hundred of
the embedding's 30,522 tokens, and the others wait instead of taking a pass over all 3.9M
parameters. Unlike those, a row that returns after k steps without a gradient first catches up
on them: its moments decay by beta_1^k and beta_2^k and its weights by AdamW's decay^k (as
AdamW's), and it moves by its momentum over the k steps (as AdamW's for a constant step size and
epsilon small against sqrt(v); with a schedule, at the current step's). When `fit` ends
(`finalize_variable_values`) every row catches up, so the trained weights are AdamW's; during
`fit` (validation, callbacks) rows are as last updated. A plain lazy update learnt slower from
random weights (3.6 points of SST-2 dev accuracy behind after one epoch); this one kept AdamW's
accuracy (`docs/results/cpu-profile.md`). TensorFlow only: JAX and PyTorch give embeddings dense
gradients.

Example:

>>> optimizer = FusedAdamW(learning_rate=1e-4)  # AdamW's arguments and defaults
>>> optimizer.weight_decay
0.004
>>> FusedAdamW(learning_rate=1e-4, lazy_sparse_updates=True).lazy_sparse_updates
True
"""

import keras


@keras.saving.register_keras_serializable(package="nbhelpers")
class FusedAdamW(keras.optimizers.AdamW):
    """AdamW (decoupled weight decay) that updates each variable in one pass on TensorFlow.

    The same update as `keras.optimizers.AdamW` up to float rounding: the variable is first
    scaled by `1 - learning_rate * weight_decay` (unless excluded from weight decay), then takes
    Adam's step. `amsgrad=True` uses Keras's update.

    Args:
        lazy_sparse_updates: on TensorFlow, a sparse gradient (an embedding's) decays and updates
            only the rows it holds, each first catching up on the steps it missed; the others
            wait until they return or `fit` ends. Off by default.
        **kwargs: `keras.optimizers.AdamW`'s arguments (`learning_rate`, `weight_decay`, ...).
    """

    def __init__(self, *args, lazy_sparse_updates=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_sparse_updates = lazy_sparse_updates

    def get_config(self):
        return {**super().get_config(), "lazy_sparse_updates": self.lazy_sparse_updates}

    def build(self, variables):
        super().build(variables)
        # With lazy updates, each row of a table that may get sparse gradients remembers the last
        # step that updated it, so that a returning row can first catch up on the steps it missed.
        # (Which variables do get them is known when the step is traced: `_lazy_indices`.)
        self._last_steps, self._lazy_indices = {}, set()
        if self.lazy_sparse_updates and self._fused():
            for variable in variables:
                if len(variable.shape) >= 2:
                    self._last_steps[self._get_variable_index(variable)] = self.add_variable(
                        (variable.shape[0],), initializer="zeros", dtype=variable.dtype,
                        name=variable.name + "_last_step")

    def _fused(self):
        return keras.backend.backend() == "tensorflow" and not self.amsgrad

    def _apply_weight_decay(self, variables):
        if not self._fused():
            super()._apply_weight_decay(variables)
        # On TensorFlow the decay is applied in `update_step`, with the variable's update.

    def _step_size(self, learning_rate, step):
        """Adam's bias-corrected step size ("epsilon hat"), as in Keras's Adam and ResourceApplyAdam."""
        import tensorflow as tf

        beta_1, beta_2 = tf.cast(self.beta_1, step.dtype), tf.cast(self.beta_2, step.dtype)
        return learning_rate * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))

    def _catch_up(self, weights, first, second, missed, step_size, decay):
        """Rows' weights and moments after `missed` steps without a gradient (a column: one count a row).

        As AdamW's: the moments decay by beta_1^missed and beta_2^missed, the weights by
        `decay`^missed (`None`: not decayed) and follow the momentum, the sum over j of
        step_size * beta_1^j m / (beta_2^(j/2) sqrt(v) + epsilon), taken with one step size and
        epsilon against sqrt(v): a geometric series.
        """
        import tensorflow as tf

        dtype = weights.dtype
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        ratio = beta_1 / tf.sqrt(beta_2)
        drift = (step_size * first / (tf.sqrt(second) + tf.cast(self.epsilon, dtype))
                 * ratio * (1 - tf.pow(ratio, missed)) / (1 - ratio))
        weights = weights * (1 if decay is None else tf.pow(decay, missed)) - drift
        return weights, first * tf.pow(beta_1, missed), second * tf.pow(beta_2, missed)

    def finalize_variable_values(self, var_list):
        """Called by `fit` when it ends: lazily updated rows first take the steps they missed since
        their last update (as a returning row does), so the trained weights are AdamW's."""
        super().finalize_variable_values(var_list)
        if not getattr(self, "_lazy_indices", None):
            return
        steps_taken = int(keras.ops.convert_to_numpy(self.iterations))
        if steps_taken == 0:  # no step to catch up on (and Adam's step size is undefined at step 0)
            return
        import tensorflow as tf

        for index in sorted(self._lazy_indices):
            variable, last_step = self._trainable_variables[index], self._last_steps[index]
            first, second = self._momentums[index], self._velocities[index]
            dtype = variable.dtype
            step = tf.cast(steps_taken, dtype)  # the last step taken
            learning_rate = tf.cast(self._get_current_learning_rate(), dtype)
            decay = self._decay(learning_rate, variable)
            caught_up = self._catch_up(
                tf.convert_to_tensor(variable), tf.convert_to_tensor(first), tf.convert_to_tensor(second),
                (step - tf.convert_to_tensor(last_step))[:, None], self._step_size(learning_rate, step), decay)
            for target, value in zip((variable, first, second), caught_up):
                target.assign(value)
            last_step.assign(tf.fill(last_step.shape, step))

    def _decay(self, learning_rate, variable):
        """AdamW's factor on `variable` a step, or `None` where it takes no weight decay."""
        if not (self.weight_decay and self._use_weight_decay(variable)):
            return None
        return 1 - learning_rate * keras.ops.cast(self.weight_decay, learning_rate.dtype)

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused():
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        learning_rate = tf.cast(learning_rate, dtype)
        index = self._get_variable_index(variable)
        moments = self._momentums[index].value.handle, self._velocities[index].value.handle
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        decay = self._decay(learning_rate, variable)
        if self.lazy_sparse_updates and isinstance(gradient, tf.IndexedSlices):
            # A variable's gradients are sparse at every step or at none (its uses decide), so
            # the rows of these variables only are behind at the end of training.
            self._lazy_indices.add(index)
            rows, occurrence_rows = tf.unique(gradient.indices)
            summed = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), occurrence_rows, tf.size(rows))
            handles = (variable.handle, *moments, self._last_steps[index].value.handle)
            weights, first, second, last = (
                tf.raw_ops.ResourceGather(resource=handle, indices=rows, dtype=dtype) for handle in handles
            )
            step_size = self._step_size(learning_rate, step)
            # A row never updated has missed every step before this one: it only decays.
            missed = (step - 1 - last)[:, None]
            weights, first, second = self._catch_up(weights, first, second, missed, step_size, decay)
            first = beta_1 * first + (1 - beta_1) * summed
            second = beta_2 * second + (1 - beta_2) * tf.square(summed)
            if decay is not None:
                weights = weights * decay
            weights = weights - step_size * first / (tf.sqrt(second) + tf.cast(self.epsilon, dtype))
            last = tf.fill(tf.shape(rows), step)
            for handle, updated in zip(handles, (weights, first, second, last)):
                tf.raw_ops.ResourceScatterUpdate(resource=handle, indices=rows, updates=updated)
            return
        if decay is not None:
            variable.assign(variable * decay)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=moments[0],
            v=moments[1],
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=learning_rate,
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.convert_to_tensor(gradient),  # a sparse (embedding) gradient is summed into a dense one
        )
