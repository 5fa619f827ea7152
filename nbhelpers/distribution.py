"""Data-parallel training across all accelerators of one machine, whatever the Keras backend."""

import contextlib

import keras

_CHOICES = ("auto", "none")


def data_parallel(kind="auto"):
    """A context manager that splits every batch across this machine's devices.

    With `"auto"` the way depends on the backend and the hardware:

    - JAX: `keras.distribution.DataParallel` over all devices (GPUs or TPU cores, else CPUs).
    - TensorFlow with a TPU: `tf.distribute.TPUStrategy` (a TPU VM, where TensorFlow lists the
      TPU itself; a remote TPU node is not looked for).
    - TensorFlow otherwise: `tf.distribute.MirroredStrategy` over all GPUs, else over the logical
      CPUs (one, unless they were split with `tf.config.set_logical_device_configuration`).

    `"none"` changes nothing. The context yields the number of replicas, so that callers can
    scale the global batch size. Build, compile and fit the model inside the `with` block: JAX
    places the variables when they are created and shards the data when `fit` runs. The global
    batch size should divide by the number of replicas.

    Args:
        kind: `"auto"` or `"none"`.

    Raises:
        ValueError: for an unknown `kind`, or `"auto"` on a backend without data parallelism here
            (PyTorch: use its own `DistributedDataParallel`).

    Example:

    >>> with data_parallel("auto") as replicas:
    ...     model = build_classifier(build_encoder(...))
    ...     model.compile(optimizer="adam", loss="binary_crossentropy")
    ...     model.fit(token_ids, labels, batch_size=32 * replicas)
    """
    if kind not in _CHOICES:
        raise ValueError(f"Unknown data-parallel kind {kind!r}: choose one of {list(_CHOICES)}.")
    if kind == "none":
        return contextlib.nullcontext(1)
    backend = keras.backend.backend()
    if backend == "jax":
        distribution = keras.distribution.DataParallel()
        return _scope_yielding(distribution.scope(), distribution.device_mesh.devices.size)
    if backend == "tensorflow":
        strategy = _tensorflow_strategy()
        return _scope_yielding(strategy.scope(), strategy.num_replicas_in_sync)
    raise ValueError(
        f"Data parallelism is not set up for the {backend!r} backend; use kind='none' "
        "(or the backend's own tools)."
    )


def _tensorflow_strategy():
    import tensorflow as tf

    if tf.config.list_physical_devices("TPU"):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    # MirroredStrategy's default is the GPUs or else only the first CPU; name the logical CPUs
    # so that a CPU split into several logical devices gets a replica on each.
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


@contextlib.contextmanager
def _scope_yielding(scope, replicas):
    with scope:
        yield replicas
