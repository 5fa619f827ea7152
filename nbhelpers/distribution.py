"""Data-parallel training across all accelerators of one machine, whatever the Keras backend.

Example:

>>> with data_parallel("none") as replicas:
...     global_batch_size(32, replicas)
32
"""

import contextlib
import functools
import sys

import keras

# The notebooks' `DISTRIBUTION` parameter: "none" trains on one device, "local" on every device
# of this machine.
DISTRIBUTIONS = ("none", "local")


def data_parallel(kind="local"):
    """A context manager that splits every batch across this machine's devices.

    With `"local"` the way depends on the backend and the hardware:

    - JAX: `keras.distribution.DataParallel` over all devices (GPUs or TPU cores, else CPUs).
    - TensorFlow with a TPU: `tf.distribute.TPUStrategy` (a TPU VM, where TensorFlow lists the
      TPU itself; a remote TPU node is not looked for).
    - TensorFlow otherwise: `tf.distribute.MirroredStrategy` over all GPUs, else over the logical
      CPUs (one, unless they were split with `tf.config.set_logical_device_configuration`).

    On a machine with one device, `"local"` prints a one-line warning and changes nothing (as
    `"none"`). The context (a `DataParallelScope`, which can be entered again and again) yields
    the number of replicas, also its `replicas`, so that callers can scale the global batch
    size (`global_batch_size`). Build, compile and fit the model inside the `with` block:
    JAX places the variables when they are created and shards the data when `fit` runs. Every
    batch must divide by the number of replicas (JAX refuses a remainder batch that does not).

    Args:
        kind: `"none"` or `"local"`.

    Raises:
        ValueError: for an unknown `kind`, or `"local"` on a backend without data parallelism
            here (PyTorch: use its own `DistributedDataParallel`).

    Example:

    >>> devices = data_parallel("local")
    >>> with devices as replicas:
    ...     model = build_classifier(build_encoder(...))
    ...     model.compile(optimizer="adam", loss="binary_crossentropy")
    ...     model.fit(token_ids, labels, batch_size=global_batch_size(32, replicas))
    """
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"Unknown data-parallel kind {kind!r}: choose one of {list(DISTRIBUTIONS)}.")
    if kind == "none":
        return DataParallelScope(contextlib.nullcontext, 1)
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        raise ValueError(
            f"Data parallelism is not set up for the {backend!r} backend; use kind='none' "
            "(or the backend's own tools)."
        )
    if backend == "jax":
        import jax

        if jax.device_count() == 1:
            return _one_device(jax.devices()[0])
        distribution = keras.distribution.DataParallel()
        return DataParallelScope(distribution.scope, distribution.device_mesh.devices.size)
    strategy = _tensorflow_strategy()
    if strategy.num_replicas_in_sync == 1:
        return _one_device(strategy.extended.worker_devices[0])
    return DataParallelScope(strategy.scope, strategy.num_replicas_in_sync)


class DataParallelScope:
    """What `data_parallel` returns: a context manager, entered as often as needed (a notebook
    builds the model in one cell and fits it in another), yielding `replicas`.

    Args:
        make_scope: returns a fresh context manager of the distribution each time it is entered.
        replicas: the number of devices a batch is split over.
    """

    def __init__(self, make_scope, replicas):
        self.make_scope, self.replicas = make_scope, replicas
        self._entered = []

    def __enter__(self):
        scope = self.make_scope()
        scope.__enter__()
        self._entered.append(scope)
        return self.replicas

    def __exit__(self, *exception):
        return self._entered.pop().__exit__(*exception)


def _one_device(device):
    # A job sized for many devices still runs on one (a GPU notebook tried on a laptop), but say so.
    print(f"Warning: DISTRIBUTION = 'local' found one device on this machine ({device}): training on it alone.",
          file=sys.stderr)
    return DataParallelScope(contextlib.nullcontext, 1)


def global_batch_size(per_device_batch, replicas):
    """The batch that one step takes across all replicas: `per_device_batch` on each.

    The notebooks' batch sizes are per device, so that a run on 8 GPUs takes the same step on
    each GPU as a run on one, and every batch divides by the replicas.

    Args:
        per_device_batch: examples per device and step (e.g. `PRETRAIN_BATCH_SIZE`).
        replicas: what `data_parallel` yields.

    Raises:
        ValueError: a batch or replica count below 1.

    >>> global_batch_size(64, replicas=8)
    512
    """
    if per_device_batch < 1 or replicas < 1:
        raise ValueError(f"A batch of {per_device_batch} on {replicas} replicas: both must be at least 1.")
    return per_device_batch * replicas


@functools.cache
def _tensorflow_strategy():
    # One strategy per process: two MirroredStrategy objects in one process run their collective
    # ops under clashing keys (a second model trained under a new one failed with "Shape mismatch
    # in the collective instance"), and a TPU system must be initialized only once.
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
