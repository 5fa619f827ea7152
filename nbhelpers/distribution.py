"""Data-parallel training across all accelerators of one machine, or of several, whatever the Keras backend.

Example:

>>> with data_parallel("none") as replicas:
...     global_batch_size(32, replicas)
32
"""

import contextlib
import functools
import json
import os
import sys

import keras

# The notebooks' `DISTRIBUTION` parameter: "none" trains on one device, "local" on every device
# of this machine, "multi_worker" on every device of several machines (one process on each).
DISTRIBUTIONS = ("none", "local", "multi_worker")
# How a multi-worker job is described to each of its processes. TensorFlow: TF_CONFIG, its JSON
# cluster and this process's task. JAX: Keras' variables, which `keras.distribution.initialize`
# passes to `jax.distributed.initialize` (JAX itself reads only the coordinator's address).
TF_CONFIG_ENV = "TF_CONFIG"
JAX_ADDRESS_ENVS = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS")
JAX_PROCESSES_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"
JAX_PROCESS_ID_ENV = "KERAS_DISTRIBUTION_PROCESS_ID"


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

    With `"multi_worker"`, one process on each machine runs the same notebook, and every batch
    is split across all devices of all of them:

    - JAX: `keras.distribution.initialize()` (that is `jax.distributed.initialize`) from
      `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the chief's `host:port`; or `JAX_COORDINATOR_ADDRESS`),
      `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` (0 is the chief),
      then `keras.distribution.DataParallel` over every device of every process. It must come
      before anything runs on JAX. CPUs talk through gloo.
    - TensorFlow: `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG`.

    Each process builds the same (seeded) global batches: Keras gives each worker its share of
    a `tf.data` batch (JAX: `rebatch` and `shard` by process; TensorFlow: auto-sharding by data);
    NumPy batches fed to a JAX job must be cut with `worker_part` first. Only the chief
    (`is_chief`) writes the artifacts (`nbhelpers.artifacts`).

    Args:
        kind: `"none"`, `"local"` or `"multi_worker"`.

    Raises:
        ValueError: for an unknown `kind`, `"local"` or `"multi_worker"` on a backend without
            data parallelism here (PyTorch: use its own `DistributedDataParallel`),
            `"multi_worker"` without its job description (above), or `"none"`/`"local"` in a
            process whose environment describes a job of several workers.

    Usage (names as in the notebooks):

        with data_parallel("local") as replicas:
            model = build_classifier(build_encoder(...))
            model.compile(optimizer="adam", loss="binary_crossentropy")
            model.fit(token_ids, labels, batch_size=global_batch_size(32, replicas))
    """
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"Unknown data-parallel kind {kind!r}: choose one of {list(DISTRIBUTIONS)}.")
    backend = keras.backend.backend()
    workers, _ = multi_worker_job(backend, required=kind == "multi_worker")
    if kind != "multi_worker" and workers > 1:
        raise ValueError(f"The environment describes a job of {workers} workers ({_job_variables(backend)}) but "
                         f"DISTRIBUTION is {kind!r}: use DISTRIBUTION multi_worker, or unset those variables.")
    if kind == "none":
        return DataParallelScope(contextlib.nullcontext, 1)
    if backend not in ("jax", "tensorflow"):
        raise ValueError(
            f"Data parallelism is not set up for the {backend!r} backend; use kind='none' "
            "(or the backend's own tools)."
        )
    if kind == "multi_worker":
        return _multi_worker(backend)
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


def _job_variables(backend):
    return TF_CONFIG_ENV if backend == "tensorflow" else f"{JAX_PROCESSES_ENV}, {JAX_PROCESS_ID_ENV}"


def multi_worker_job(backend=None, required=False):
    """`(workers, index)`: this process's place in the multi-worker job its environment describes.

    `(1, 0)` where none is described. The chief is index 0: TF_CONFIG's `chief` task, else its
    `worker` 0 (TensorFlow's rule); `KERAS_DISTRIBUTION_PROCESS_ID` 0 on JAX. Only the
    environment is read, so this can be asked before anything is set up.

    Args:
        backend: the Keras backend whose variables to read (default: the active one).
        required: raise where no job (or a broken one) is described, instead of `(1, 0)`.

    Raises:
        ValueError: with `required`, a missing description; always, a malformed one.

    Example:

    >>> os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
    ...                                       "task": {"type": "worker", "index": 1}})
    >>> multi_worker_job("tensorflow")
    (2, 1)
    >>> del os.environ["TF_CONFIG"]  # this process is no worker of that job
    """
    backend = backend or keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_job(required)
    if backend == "jax":
        return _jax_job(required)
    return 1, 0


def _tensorflow_job(required):
    text = os.environ.get(TF_CONFIG_ENV, "")
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\' on host1, index 1 on host2')
    if not text.strip():
        if required:
            raise ValueError(f"DISTRIBUTION = 'multi_worker' on TensorFlow needs TF_CONFIG on every machine: {example}.")
        return 1, 0
    try:
        config = json.loads(text)
        cluster, task = config.get("cluster") or {}, config.get("task") or {}
        chiefs, workers = list(cluster.get("chief") or []), list(cluster.get("worker") or [])
        kind, index = task.get("type"), task.get("index", 0)
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"TF_CONFIG is not a JSON object with a cluster and a task: {example}.") from None
    if not chiefs and not workers:
        if required:
            raise ValueError(f"TF_CONFIG names no chief and no worker in its cluster: {example}.")
        return 1, 0
    if kind not in ("chief", "worker") or not isinstance(index, int) or index < 0 \
            or index >= len(chiefs if kind == "chief" else workers):
        raise ValueError(f"TF_CONFIG's task {task} is not one of its cluster's {len(chiefs)} chief and "
                         f"{len(workers)} worker addresses: {example}.")
    return len(chiefs) + len(workers), index if kind == "chief" else len(chiefs) + index


def _jax_job(required):
    address = next((os.environ[name] for name in JAX_ADDRESS_ENVS if os.environ.get(name)), "")
    processes, process = os.environ.get(JAX_PROCESSES_ENV, ""), os.environ.get(JAX_PROCESS_ID_ENV, "")
    example = (f"e.g. {JAX_ADDRESS_ENVS[0]}=host1:12345 {JAX_PROCESSES_ENV}=2 {JAX_PROCESS_ID_ENV}=0 on host1, "
               f"the same with {JAX_PROCESS_ID_ENV}=1 on host2")
    if not (address or processes or process):
        if required:
            raise ValueError(f"DISTRIBUTION = 'multi_worker' on JAX needs the coordinator's settings on every machine: "
                             f"{example}.")
        return 1, 0
    if not (address and processes.isdigit() and process.isdigit() and int(process) < int(processes)):
        raise ValueError(f"JAX's multi-worker settings are incomplete ({JAX_ADDRESS_ENVS[0]}={address!r}, "
                         f"{JAX_PROCESSES_ENV}={processes!r}, {JAX_PROCESS_ID_ENV}={process!r}): {example}.")
    return int(processes), int(process)


def is_chief():
    """Whether this process writes the artifacts: True unless it is a non-chief worker of a multi-worker job.

    Read from the environment (`multi_worker_job`), so the artifact helpers can ask before
    the distribution is set up; `data_parallel` refuses an environment that describes a job
    of several workers unless `DISTRIBUTION` is `multi_worker`.

    >>> is_chief()  # no multi-worker job described here
    True
    """
    return multi_worker_job()[1] == 0


def _multi_worker(backend):
    workers, index = multi_worker_job(backend, required=True)
    if backend == "jax":
        distribution = _jax_multi_worker()
        replicas = distribution.device_mesh.devices.size
    else:
        strategy = _tensorflow_multi_worker_strategy()
        replicas = strategy.num_replicas_in_sync
        distribution = strategy
    print(f"worker {index} of {workers}{' (the chief)' if index == 0 else ''}: {replicas} replicas in all")
    return DataParallelScope(distribution.scope, replicas)


@functools.cache
def _jax_multi_worker():
    import jax

    if not jax.distributed.is_initialized():
        try:
            keras.distribution.initialize()
        except RuntimeError as exc:  # JAX refuses once it has run anything
            raise RuntimeError(f"DISTRIBUTION = 'multi_worker' must be set up before anything runs on JAX "
                               f"(call data_parallel first): {exc}") from exc
    # Each worker's part of the data is set per `fit` (`feed_workers`): Keras cuts tf.data batches
    # itself but refuses other data unless told it is cut already.
    return keras.distribution.DataParallel(devices=jax.devices())


@functools.cache
def _tensorflow_multi_worker_strategy():
    # One per process, like _tensorflow_strategy; it reads TF_CONFIG and waits for every worker.
    import tensorflow as tf

    # In a notebook (an interactive session) TensorFlow's logger shows INFO, and this strategy
    # logs a line per all-reduce: hundreds a minute that would bury the training progress.
    tf.get_logger().setLevel("WARNING")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    reduce = strategy.reduce

    # Two ways Keras 3.15's fit calls `strategy.reduce` that this strategy refuses across workers
    # (tensorflow/tensorflow#72388): with a dict (the first batch, to build a model of several
    # inputs: "Attempt to convert a value ({'token_ids': PerReplica ..."), and with axis 0 on a
    # scalar (every step's loss: "Invalid reduction dimension 0 for input with 0 dimensions").
    # Reduce each tensor alone, a scalar without an axis (the same mean over the replicas).
    def reduce_each(op, value, axis=None):
        def one(v):
            local = strategy.experimental_local_results(v)[0]
            return reduce(op, v, None if axis == 0 and getattr(local, "shape", None) == () else axis)

        return tf.nest.map_structure(one, value)

    strategy.reduce = reduce_each
    return strategy


def from_chief(values):
    """The chief's `values` (a list of NumPy arrays or numbers), in every worker of a multi-worker job.

    Every worker must call it at the same point (it is a collective operation). Used where a
    worker would otherwise decide alone: the training state restored after an interruption (only
    the chief keeps it), a step time measured for a time budget. Elsewhere `values` come back as
    NumPy arrays.

    Example:

    >>> import numpy as np
    >>> from_chief([np.float64(0.25), np.zeros(3)])  # one process: its own values
    [array(0.25), array([0., 0., 0.])]
    """
    import numpy as np

    values = [np.asarray(v) for v in values]
    if multi_worker_job()[0] == 1:
        return values
    if keras.backend.backend() == "jax":
        from jax.experimental import multihost_utils

        return [np.asarray(v).astype(original.dtype)
                for v, original in zip(multihost_utils.broadcast_one_to_all(values), values)]
    import tensorflow as tf

    # A sum over the workers in which only the chief's values are not zero (in float64, exact for
    # float32 values and int64 step counts below 2**53).
    strategy = _tensorflow_multi_worker_strategy()
    keep = 1.0 if is_chief() else 0.0
    tensors = [tf.constant(v.astype("float64") * keep) for v in values]

    def summed():
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tensors)

    local = strategy.experimental_local_results(strategy.run(summed))[0]
    return [t.numpy().astype(original.dtype) for t, original in zip(local, values)]


def feed_workers(*datasets):
    """The training data as each worker of a JAX multi-worker job must feed it to `fit`.

    Every worker builds the same global batches. `tf.data` datasets come back unchanged (Keras
    cuts each batch, `rebatch` and `shard` by process); other iterables of batches (NumPy
    batches, the TensorFlow-free path) come back as generators of this worker's part of each
    batch (`worker_part`), and Keras is told they are cut already. `None` stays `None`.
    Elsewhere (one process; TensorFlow, whose strategy cuts `tf.data` batches itself) all come
    back unchanged. `fit_logged` calls it.

    Raises:
        ValueError: a mix of `tf.data` and other data.

    Usage (names as in the notebooks):

        train, validation = feed_workers(train, validation)
    """
    distribution = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    if distribution is None or not distribution._is_multi_process:
        return datasets
    tf_data = [_is_tf_dataset(d) for d in datasets if d is not None]
    if any(tf_data) and not all(tf_data):
        raise ValueError("In a multi-worker job, give fit either tf.data datasets or NumPy batches, not a mix.")
    distribution.auto_shard_dataset = all(tf_data)
    if distribution.auto_shard_dataset:
        return datasets
    train, *others = datasets
    if isinstance(train, keras.utils.PyDataset) and hasattr(train, "repeat"):
        # Endless passes (fit_logged gives `steps_per_epoch`): Keras keeps one iterator of the
        # training data across epochs, which a single pass would leave empty after the first.
        train = train.repeat()
    return tuple(None if d is None else _WorkerPart(d) if isinstance(d, keras.utils.PyDataset)
                 else (worker_part(batch) for batch in d) for d in (train, *others))


class _WorkerPart(keras.utils.PyDataset):
    # A PyDataset (validation batches, read again every epoch) cut for this worker; a one-pass
    # generator would be empty from the second epoch on.
    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return worker_part(self.dataset[index])

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def _is_tf_dataset(data):
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def worker_part(batch):
    """This worker's rows of a global batch (arrays, or a nested structure of them), for a JAX multi-worker job.

    Keras on JAX takes the batch each process feeds as that process's part of the global batch
    (`jax.make_array_from_process_local_data`); it cuts `tf.data` batches itself, but NumPy
    batches must be cut before `fit`. Elsewhere (one process, or TensorFlow, which shards
    `tf.data` itself) the batch is returned unchanged.

    Raises:
        ValueError: the batch does not divide by the number of workers.

    Example:

    >>> import numpy as np
    >>> worker_part(np.arange(8))  # one process: unchanged
    array([0, 1, 2, 3, 4, 5, 6, 7])
    """
    if keras.backend.backend() != "jax":
        return batch
    import jax

    workers, index = jax.process_count(), jax.process_index()
    if workers == 1:
        return batch

    def part(array):
        check_global_batch(len(array), workers, what="workers")
        size = len(array) // workers
        return array[index * size:(index + 1) * size]

    return keras.tree.map_structure(part, batch)


def check_global_batch(batch, replicas, what="replicas"):
    """Raise a one-line `ValueError` unless a global batch of `batch` divides by `replicas`.

    >>> check_global_batch(64, 4)
    >>> check_global_batch(30, 4)
    Traceback (most recent call last):
    ...
    ValueError: A global batch of 30 does not divide by the 4 replicas: make it a multiple of 4 (e.g. 28 or 32), or give the batch per device (global_batch_size).
    """
    if batch % replicas:
        lower, higher = batch // replicas * replicas, -(-batch // replicas) * replicas
        raise ValueError(f"A global batch of {batch} does not divide by the {replicas} {what}: make it a multiple of "
                         f"{replicas} (e.g. {lower or higher} or {higher}), or give the batch per device "
                         "(global_batch_size).")


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
