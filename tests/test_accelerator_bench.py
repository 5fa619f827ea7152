"""The accelerator benches run end to end on a CPU, their GPU-side halves without TensorFlow.

`bench/gpu_step.py` and `bench/gpu_label_curve.py run` are meant for a GPU machine that has JAX but
no TensorFlow; here they run in a child process where importing TensorFlow fails. Their
figures are read by people, not asserted.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_TENSORFLOW  # a sitecustomize.py that makes TensorFlow unimportable

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "gpu_step.py"


def test_the_accelerator_step_bench_runs_without_tensorflow(tmp_path):
    """bench/gpu_step.py on a CPU under JAX, TensorFlow made unimportable: sweep and a parity run."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    # A notebook-02 artifact folder in miniature: packed token ids and its config.
    data = tmp_path / "02_mlm_data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, rows in (("train", 96), ("valid", 16)):
        np.save(data / f"{split}_tokens.npy", rng.integers(5, 60, size=(rows, 16)).astype("int32"))
    (data / "config.json").write_text(json.dumps(
        {"vocabulary_size": 60, "sequence_length": 16, "predictions_per_sequence": 3, "mask_rate": 0.2}))
    params = tmp_path / "params.yaml"  # 1e-2: read as a float, as the series reads its profiles
    params.write_text("SEED: 1\nNUM_LAYERS: 1\nMODEL_DIM: 16\nNUM_HEADS: 2\nINTERMEDIATE_DIM: 32\nDROPOUT: 0.0\n"
                      "NORMALIZE_FIRST: true\nPRETRAIN_BATCH_SIZE: 16\nPRETRAIN_LEARNING_RATE: 1e-2\n"
                      "PRETRAIN_SCHEDULE: warmup_cosine\n")
    out = tmp_path / "gpu_step.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--recipes", "ours", "--heads", "softmax", "logits",
         "--precisions", "float32", "--batch-sizes", "4", "--fit-batch-sizes", "4", "--sequence-length", "16",
         "--predictions", "3", "--vocabulary-size", "60", "--parity-data", str(data), "--parity-params", str(params),
         "--parity-steps", "10", "--parity-runs", "float32:softmax", "float32:logits", "--out", str(out)],
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"},
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["machine"]["platform"] == "cpu"
    runs = {(run["head"], run["path"]): run for run in results["runs"]}
    assert set(runs) == {("softmax", "step"), ("softmax", "fit"), ("logits", "step")}
    assert all(run["sequences_per_second"] > 0 and 0 < run["mfu"] for run in runs.values())
    softmax, logits = results["parity"]
    assert softmax["steps"] == logits["steps"] == 10
    # Same seed, same weights and masks: the two heads train alike (float32 here).
    np.testing.assert_allclose(softmax["val_mlm_accuracy"], logits["val_mlm_accuracy"], atol=0.02)
    assert len(softmax["val_mlm_accuracy"]) == 10


def test_training_flops_count_the_guide_model():
    spec = importlib.util.spec_from_file_location("gpu_step", BENCH)
    gpu_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_step)  # its imports only; it trains nothing until main()
    # By hand: encoder 3 x (4*128^2 + 2*128*512 + 2*128*128) per token x 128 tokens, head
    # 25 x (128^2 + 128*30522), times 2 FLOPs per multiply-add, times 3 for the backward pass.
    flops = gpu_step.training_flops_per_sequence(128, 25, 30522, 3, 128, 512)
    assert flops == 6 * (128 * 3 * 229_376 + 25 * 3_923_200)


def test_the_gpu_label_curve_prepares_with_tensorflow_and_runs_without(tmp_path, miniature_mlm_data):
    """bench/gpu_label_curve.py: `prepare` (tokenizer, samples) here, `run` in a TensorFlow-free JAX process."""
    data_dir, mlm_data = miniature_mlm_data(sst2_train=400, sst2_dev=60, train_rows=64, valid_rows=16, predictions=3)
    params = tmp_path / "params.yaml"  # 1e-3: read as a float, as the series reads its profiles
    params.write_text("SEED: 1\nNUM_LAYERS: 1\nMODEL_DIM: 16\nNUM_HEADS: 2\nINTERMEDIATE_DIM: 32\nDROPOUT: 0.0\n"
                      "NORMALIZE_FIRST: true\nPRETRAIN_BATCH_SIZE: 16\nPRETRAIN_LEARNING_RATE: 1e-2\n"
                      "PRETRAIN_SCHEDULE: warmup_cosine\nFINETUNE_BATCH_SIZE: 16\nCURVE_LEARNING_RATE: 1e-3\n"
                      "BASELINE_MAX_TOKENS: 100\nCURVE_MIN_STEPS: 10\nCURVE_BUDGETS: \"40,80\"\nCURVE_SEEDS: 2\n")
    spec = importlib.util.spec_from_file_location("gpu_label_curve", BENCH.with_name("gpu_label_curve.py"))
    curve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(curve)
    prepared = tmp_path / "prepared.npz"
    curve.main(["prepare", "--mlm-data", str(mlm_data), "--params", str(params), "--data-dir", str(data_dir),
                "--out", str(prepared)])
    with np.load(prepared) as arrays:
        assert arrays["train_tokens"].shape == (400, 16) and arrays["dev_tokens"].shape == (60, 16)
        # budget, seed (from the profile's SEED, as notebook 04), epochs
        assert arrays["runs"].tolist() == [[40, 1, 5], [40, 2, 5], [80, 1, 3], [80, 2, 3]]
        train, validation = arrays["train_80_2"], arrays["validation_80_2"]
        assert len(train) + len(validation) == 80 and not set(train) & set(validation)
        assert arrays["bag_of_words_accuracy"].shape == (4,)  # one per run, on its sample
        assert arrays["cooccurrence_vectors"].shape[1] == 16  # MODEL_DIM

    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    out = tmp_path / "curve.json"
    done = subprocess.run(
        [sys.executable, str(BENCH.with_name("gpu_label_curve.py")), "run", "--mlm-data", str(mlm_data),
         "--params", str(params), "--prepared", str(prepared), "--arm", "no pretraining", "random", "0", "0",
         "--arm", "MLM", "random", "4", "16", "--arm", "vectors", "cooccurrence", "0", "0",
         "--arm", "vectors + MLM", "cooccurrence", "8", "8", "--out", str(out)],
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"},
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    assert {name: (p["steps"], p["batch"]) for name, p in results["pretraining"].items()} == {
        "MLM": (4, 16), "vectors": (0, 0), "vectors + MLM": (8, 8)}
    accuracy = results["curve"]["accuracy"]
    assert list(accuracy) == ["bag of words", "no pretraining", "MLM", "vectors", "vectors + MLM"]
    for per_budget in accuracy.values():
        assert set(per_budget) == {"40", "80"} and all(len(v) == 2 and all(0 <= a <= 1 for a in v)
                                                         for v in per_budget.values())


def test_the_gpu_label_curve_refuses_a_malformed_arm(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_label_curve", BENCH.with_name("gpu_label_curve.py"))
    curve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(curve)
    for arm in (["x", "glove", "0", "0"], ["x", "random", "100", "0"], ["x", "random", "ten", "64"]):
        with pytest.raises(SystemExit):
            curve.main(["run", "--mlm-data", str(tmp_path), "--prepared", "none.npz", "--arm", *arm, "--out", "x.json"])
