"""How long training runs: learning-rate schedules, time budgets and the plan that joins them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.artifacts import write_json
from nbhelpers.models import build_encoder, build_pretraining_model
from nbhelpers.optimizers import FusedAdamW
from nbhelpers.schedules import (
    EVALUATIONS_PER_BUDGET, describe_optimizer, learning_rate, plan_training_length, saved_step_plan,
    seconds_per_step, steps_for_minutes,
)


@pytest.fixture
def pretrainer_and_batches(hand_vocabulary):
    """A small MLM model and an endless dataset of one masked batch."""
    keras.utils.set_random_seed(0)
    encoder = build_encoder(len(hand_vocabulary), sequence_length=16, num_layers=1, model_dim=16, num_heads=2,
                            intermediate_dim=32, dropout=0.0)
    pretrainer = build_pretraining_model(encoder, predictions_per_sequence=2)
    token_ids = np.zeros((4, 16), "int32")
    token_ids[:, :4] = [5, 6, 7, 8]
    batch = ({"token_ids": token_ids, "mask_positions": np.array([[0, 1]] * 4, "int32")},
             np.array([[5, 6]] * 4, "int32"), np.ones((4, 2), "float32"))
    return pretrainer, tf.data.Dataset.from_tensors(batch)


def test_the_warmup_cosine_schedule_rises_to_the_peak_and_ends_at_zero():
    assert learning_rate(5e-4, "constant", 100) == 5e-4
    rate = learning_rate(1e-3, "warmup_cosine", total_steps=1000)
    values = [float(rate(step)) for step in range(0, 1001, 10)]
    assert values[0] == 0 and max(values) == pytest.approx(1e-3) and values[-1] == pytest.approx(0, abs=1e-9)
    peak = values.index(max(values))
    assert values[:peak + 1] == sorted(values[:peak + 1]) and values[peak:] == sorted(values[peak:], reverse=True)
    with pytest.raises(ValueError, match="warmup_cosine"):
        learning_rate(1e-3, "cyclic", 10)


def test_describe_optimizer_names_the_optimizer_its_settings_and_its_schedule():
    rate = learning_rate(1e-3, "warmup_cosine", total_steps=1000)
    assert describe_optimizer(keras.optimizers.AdamW(rate)) == (
        "AdamW(weight_decay=0.004, beta_1=0.9, beta_2=0.999), learning rate: warm-up to 0.001 over 60 steps, "
        "then cosine decay to 0 at step 1000")
    assert describe_optimizer(FusedAdamW(5e-4, lazy_sparse_updates=True)) == (
        "FusedAdamW(weight_decay=0.004, beta_1=0.9, beta_2=0.999, lazy_sparse_updates=True), "
        "learning rate: constant 0.0005")
    assert describe_optimizer(keras.optimizers.SGD(0.1)) == "SGD(), learning rate: constant 0.1"


def test_a_time_budget_becomes_steps_measured_without_changing_the_weights(pretrainer_and_batches):
    pretrainer, dataset = pretrainer_and_batches
    before = [w.copy() for w in pretrainer.get_weights()]
    seconds = seconds_per_step(pretrainer, dataset, "sparse_categorical_crossentropy", steps=3, warmup_steps=1)
    assert 0 < seconds < 5
    for old, new in zip(before, pretrainer.get_weights()):
        np.testing.assert_array_equal(old, new)
    # Ten minutes at 0.2 s per step, less ten evaluations of 30 batches at a third of a step.
    assert steps_for_minutes(10, 0.2, evaluations=10, validation_batches=30) == int((600 - 10 * 30 * 0.2 / 3) / 0.2)
    assert steps_for_minutes(0.001, 1.0, evaluations=10, validation_batches=30) == 10  # at least one per evaluation


def test_a_resumed_time_budget_keeps_the_first_runs_step_count(tmp_path):
    config = {"pretrain_minutes": 20.0, "seed": 1}
    assert saved_step_plan(tmp_path / "missing", config) is None
    write_json(tmp_path / "run.json", {**config, "planned_steps": 4321})
    assert saved_step_plan(tmp_path, config) == 4321
    assert saved_step_plan(tmp_path, {**config, "seed": 2}) is None  # another run's plan is not reused


def test_a_fresh_run_without_a_budget_trains_its_epochs_untimed(pretrainer_and_batches, tmp_path):
    pretrainer, dataset = pretrainer_and_batches
    config = {"seed": 1, "pretrain_minutes": 0.0}
    plan = plan_training_length(pretrainer, dataset, epochs=4, steps_per_epoch=12, minutes=0.0, validation_batches=3,
                                loss="sparse_categorical_crossentropy", resume_dir=tmp_path, resume_config=config)
    assert (plan.epochs, plan.steps_per_epoch, plan.total_steps, plan.planned_steps) == (4, 12, 48, None)
    assert plan.train is dataset and plan.resume_config == config and plan.resume_config is not config
    assert not pretrainer.compiled  # not timed


def test_a_time_budget_is_timed_once_and_split_into_evaluations(pretrainer_and_batches, tmp_path, monkeypatch):
    pretrainer, dataset = pretrainer_and_batches
    import nbhelpers.schedules as schedules

    monkeypatch.setattr(schedules, "seconds_per_step", lambda model, train, loss, jit: 0.2)
    config = {"seed": 1, "pretrain_minutes": 10.0}
    plan = plan_training_length(pretrainer, dataset, epochs=4, steps_per_epoch=12, minutes=10.0, minutes_spent=0.5,
                                validation_batches=30, loss="sparse_categorical_crossentropy",
                                resume_dir=tmp_path / "resume", resume_config=config)
    # The notebooks' arithmetic: the budget less the head start, less ten validation passes.
    steps = steps_for_minutes(10.0 - 0.5, 0.2, EVALUATIONS_PER_BUDGET, 30)
    assert plan.planned_steps == steps and plan.resume_config == {**config, "planned_steps": steps}
    assert (plan.epochs, plan.steps_per_epoch) == (EVALUATIONS_PER_BUDGET, steps // EVALUATIONS_PER_BUDGET)
    assert len(list(plan.train.take(3))) == 3 and int(plan.train.cardinality()) == tf.data.INFINITE_CARDINALITY


def test_a_resumed_time_budget_reuses_the_saved_plan_without_timing(pretrainer_and_batches, tmp_path, monkeypatch):
    pretrainer, dataset = pretrainer_and_batches
    import nbhelpers.schedules as schedules

    def no_timing(*args):
        raise AssertionError("a resumed run must not time its steps again")

    monkeypatch.setattr(schedules, "seconds_per_step", no_timing)
    config = {"seed": 1, "pretrain_minutes": 10.0}
    write_json(tmp_path / "run.json", {**config, "planned_steps": 1234})
    plan = plan_training_length(pretrainer, dataset, epochs=4, steps_per_epoch=12, minutes=10.0, validation_batches=30,
                                loss="sparse_categorical_crossentropy", resume_dir=tmp_path, resume_config=config)
    assert plan.planned_steps == 1234 and (plan.epochs, plan.steps_per_epoch) == (EVALUATIONS_PER_BUDGET, 123)
    assert plan.resume_config == {**config, "planned_steps": 1234}
