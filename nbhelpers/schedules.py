"""How long training runs and how its learning rate moves: schedules, time budgets and their plan.

Notebook 03 trains for a number of epochs, or for a time budget (`PRETRAIN_MINUTES`): the budget
is turned into a step count once, by timing a few steps, so that the learning-rate schedule can
end on time; a resumed run keeps the first run's count. `plan_training_length` does all of that
in one call.

Example:

>>> rate = learning_rate(1e-3, "warmup_cosine", total_steps=1000)
>>> [round(float(rate(step)), 5) for step in (0, 60, 1000)]
[0.0, 0.001, 0.0]
>>> describe_optimizer(keras.optimizers.AdamW(rate))
'AdamW(weight_decay=0.004, beta_1=0.9, beta_2=0.999), learning rate: warm-up to 0.001 over 60 steps, then cosine decay to 0 at step 1000'
"""

import dataclasses
import time
from pathlib import Path

import keras

from nbhelpers.artifacts import read_json
from nbhelpers.distribution import from_chief, multi_worker_job

# "constant": the guide's fixed learning rate. "warmup_cosine": a linear warm-up over the first
# WARMUP_SHARE of the steps, then a cosine decay to zero at the last step, so a short budget ends
# with small, careful updates.
SCHEDULES = ("constant", "warmup_cosine")
WARMUP_SHARE = 0.06
# With a time budget (notebook 03's PRETRAIN_MINUTES), validation runs this many times.
EVALUATIONS_PER_BUDGET = 10


def learning_rate(peak, schedule, total_steps):
    """The learning rate (a float or a Keras schedule) for `peak`, `schedule` and `total_steps`.

    Args:
        peak: the largest learning rate (the constant one for "constant").
        schedule: one of `SCHEDULES`.
        total_steps: the optimizer steps of the whole training.

    Example:

    >>> learning_rate(5e-4, "constant", total_steps=100)
    0.0005
    """
    if schedule == "constant":
        return peak
    if schedule == "warmup_cosine":
        warmup = max(1, int(WARMUP_SHARE * total_steps))
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, total_steps - warmup), warmup_target=peak, warmup_steps=warmup
        )
    raise ValueError(f"Unknown learning-rate schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}.")


def describe_learning_rate(rate):
    """One line on a learning rate: a float, or a `CosineDecay` with or without warm-up.

    Example:

    >>> describe_learning_rate(0.001)
    'constant 0.001'
    """
    if isinstance(rate, keras.optimizers.schedules.CosineDecay):
        end = rate.initial_learning_rate * rate.alpha
        decay = f"cosine decay to {end:g} at step {rate.warmup_steps + rate.decay_steps}"
        if rate.warmup_target is None:
            return f"from {rate.initial_learning_rate:g}, {decay}"
        return f"warm-up to {rate.warmup_target:g} over {rate.warmup_steps} steps, then {decay}"
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return type(rate).__name__
    return f"constant {float(rate):g}"


def describe_optimizer(optimizer):
    """One line naming an optimizer, its main settings and its learning rate (or schedule).

    Args:
        optimizer: a Keras optimizer; for Adam and its kin (AdamW, `FusedAdamW`) the weight
            decay and betas are named too, and `FusedAdamW`'s lazy sparse updates where on.

    Example:

    >>> describe_optimizer(keras.optimizers.AdamW(5e-4))
    'AdamW(weight_decay=0.004, beta_1=0.9, beta_2=0.999), learning rate: constant 0.0005'
    """
    settings = [f"{key}={getattr(optimizer, key):g}"
                for key in ("weight_decay", "beta_1", "beta_2") if getattr(optimizer, key, None) is not None]
    if getattr(optimizer, "lazy_sparse_updates", False):
        settings.append("lazy_sparse_updates=True")
    rate = optimizer._learning_rate  # the schedule itself: `optimizer.learning_rate` is its current value
    return f"{type(optimizer).__name__}({', '.join(settings)}), learning rate: {describe_learning_rate(rate)}"


def seconds_per_step(model, dataset, loss, jit_compile=False, steps=40, warmup_steps=10):
    """Measure a training step's wall time on `dataset`, leaving the model's weights unchanged.

    The model is compiled with `loss` and a throwaway AdamW at learning rate 0 (the same work
    as a real step), and its weights are put back afterwards: compile it for real after this.
    The warm-up steps trace the step and drain the batches `tf.data` prefetched meanwhile: on a
    2-core machine the input pipeline's work competes with the step's, and must be in the timing
    (with 3 warm-up steps and 20 timed, a 25-minute budget measured 414 ms a step and ran at 520).
    """
    weights = model.get_weights()
    model.compile(loss=loss, optimizer=keras.optimizers.AdamW(0.0), jit_compile=jit_compile)
    batches = iter(dataset.repeat())  # a small corpus may have fewer batches than the measurement
    for _ in range(warmup_steps):  # the first steps trace the graph
        model.train_on_batch(*next(batches))
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*next(batches))
    elapsed = (time.perf_counter() - start) / steps
    model.set_weights(weights)
    # In a multi-worker job every worker must plan the same step count: the chief's measurement.
    return float(from_chief([elapsed])[0])


def steps_for_minutes(minutes, step_seconds, evaluations, validation_batches):
    """How many training steps fit in `minutes`, leaving time for `evaluations` validation passes.

    A validation batch costs about a third of a training step (forward pass only).

    >>> steps_for_minutes(10, step_seconds=0.2, evaluations=10, validation_batches=30)
    2900
    """
    evaluation_seconds = evaluations * validation_batches * step_seconds / 3
    return max(evaluations, int((minutes * 60 - evaluation_seconds) / step_seconds))


def saved_step_plan(resume_dir, resume_config, key="planned_steps"):
    """The step count planned by an interrupted run with the same configuration, or `None`.

    A time budget is turned into a step count once, by measurement; a resumed run must keep the
    first run's count (and so its learning-rate schedule) rather than measure again. In a
    multi-worker job, every worker gets the chief's answer (only the chief keeps the state).
    """
    stamp = Path(resume_dir) / "run.json"
    saved = read_json(stamp) if stamp.is_file() else {}
    steps = saved.get(key) if saved and {k: v for k, v in saved.items() if k != key} == resume_config else None
    if multi_worker_job()[0] > 1:
        steps = int(from_chief([-1 if steps is None else steps])[0])
        return None if steps < 0 else steps
    return steps


@dataclasses.dataclass
class TrainingLength:
    """How long `fit` runs: pass `train`, `epochs` and `steps_per_epoch` to it, `resume_config` to `fit_logged`.

    Attributes:
        epochs: `fit`'s epochs (with a time budget: `EVALUATIONS_PER_BUDGET` stretches between evaluations).
        steps_per_epoch: steps between two evaluations.
        train: the training batches to fit on (repeated without end under a time budget).
        resume_config: the run's configuration, with `planned_steps` under a time budget.
        planned_steps: the budget's step count, or `None` when training counts epochs.
    """

    epochs: int
    steps_per_epoch: int
    train: object
    resume_config: dict
    planned_steps: int | None = None

    @property
    def total_steps(self):
        """The optimizer steps of the whole training (what a schedule spans)."""
        return self.epochs * self.steps_per_epoch


def plan_training_length(model, train, *, epochs, steps_per_epoch, minutes, validation_batches, loss,
                         resume_dir, resume_config, minutes_spent=0.0, jit_compile=False):
    """Plan the training's epochs and steps: `epochs` passes, or as many steps as fit in `minutes`.

    Without a budget (`minutes` 0), training takes `epochs` epochs of `steps_per_epoch` steps.
    With one, the step count comes from the plan saved in `resume_dir` by an interrupted run of
    the same configuration, or else from timing the model's steps (`seconds_per_step`, which
    leaves the weights unchanged: compile the model for real afterwards) and
    `steps_for_minutes`; that count is split into `EVALUATIONS_PER_BUDGET` epochs over endless
    training batches, and recorded in the returned `resume_config`, so that a resumed run keeps it.

    Args:
        model: the model that trains (timed, under a budget).
        train: its training batches (a `tf.data.Dataset` or `nbhelpers.batches.NumpyBatches`).
        epochs, steps_per_epoch: the training's length without a budget.
        minutes: the time budget; 0 trains `epochs` epochs.
        validation_batches: batches of one validation pass (its time comes out of the budget).
        loss: the model's loss, for the timing.
        resume_dir, resume_config: where `fit_logged` keeps the training state, and for which run.
        minutes_spent: time already taken from the budget (e.g. by a head start before training).
        jit_compile: whether the timed steps are XLA-compiled, as the real ones will be.

    Returns:
        A `TrainingLength`.

    Example:

    >>> # Without a budget, neither the model nor the batches nor the folder are touched.
    >>> plan = plan_training_length(None, [], epochs=4, steps_per_epoch=12, minutes=0, validation_batches=3,
    ...                             loss="sparse_categorical_crossentropy", resume_dir="unused",
    ...                             resume_config={"seed": 42})
    >>> plan.epochs, plan.steps_per_epoch, plan.total_steps, plan.planned_steps
    (4, 12, 48, None)
    """
    if not minutes:
        return TrainingLength(epochs, steps_per_epoch, train, dict(resume_config))
    planned_steps = saved_step_plan(resume_dir, resume_config)
    if planned_steps is None:
        step_seconds = seconds_per_step(model, train, loss, jit_compile)
        planned_steps = steps_for_minutes(minutes - minutes_spent, step_seconds, EVALUATIONS_PER_BUDGET,
                                          validation_batches)
        print(f"{step_seconds * 1000:.0f} ms per step: {planned_steps:,} steps fit in {minutes} minutes")
    else:
        print(f"{planned_steps:,} steps, as planned for {minutes} minutes by the interrupted run")
    # An "epoch" is now the stretch between two evaluations, over batches that never run out.
    return TrainingLength(EVALUATIONS_PER_BUDGET, planned_steps // EVALUATIONS_PER_BUDGET, train.repeat(),
                          {**resume_config, "planned_steps": planned_steps}, planned_steps)
