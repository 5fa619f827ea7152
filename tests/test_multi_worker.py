"""DISTRIBUTION multi_worker: two worker processes on 127.0.0.1 against one process, and the
checks that run before any work (a missing or broken job description, a batch that does not divide)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nbhelpers import distribution
from nbhelpers.artifacts import publish_artifact, resume_folder, stage_artifact, write_json

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("multi_worker_train.py")
# Each process imports TensorFlow and compiles; on 2 loaded cores a process took up to 2 minutes.
TIMEOUT = 240
JOB_VARIABLES = ("TF_CONFIG", *distribution.JAX_ADDRESS_ENVS, distribution.JAX_PROCESSES_ENV,
                 distribution.JAX_PROCESS_ID_ENV)


def free_ports(count):
    """`count` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def job_environments(backend):
    """The environment of each of two workers on this machine (the chief first)."""
    if backend == "tensorflow":
        addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
        return [{"TF_CONFIG": json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})}
                for i in range(2)]
    (port,) = free_ports(1)
    return [{"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
             "KERAS_DISTRIBUTION_PROCESS_ID": str(i)} for i in range(2)]


def run_together(runs, backend, status=0):
    """Run `(arguments, extra environment)` pairs of the script at once; return what each printed.

    Each must end with exit status `status`.

    Every process is killed (with its children) when the test leaves, whatever happened.
    """
    base = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    base.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", NBHELPERS_QUIET="1",
                PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    processes = []
    try:
        for arguments, extra in runs:
            processes.append(subprocess.Popen(
                [sys.executable, str(SCRIPT), *map(str, arguments)], env={**base, **extra}, cwd=ROOT,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
        outputs = [process.communicate(timeout=TIMEOUT) for process in processes]
        for process, (_, err) in zip(processes, outputs):
            assert process.returncode == status, f"{backend} process ended with {process.returncode}:\n{err[-4000:]}"
        return [out + err for out, err in outputs]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# On JAX the job is first stopped after its first epoch (as by a kill) and started again: it
# resumes from the chief's saved state. TensorFlow runs straight through (time).
@pytest.mark.parametrize("backend, interrupted", [("jax", True), ("tensorflow", False)])
def test_two_workers_train_as_one_process_and_only_the_chief_writes(tmp_path, backend, interrupted):
    # The chief then trains the same model on one device of its own: the one-process reference
    # (a third process would add half again to the test's time).
    runs = [(("multi_worker", tmp_path / "job", tmp_path / "chief.npz", tmp_path / "one.npz"),),
            (("multi_worker", tmp_path / "job", tmp_path / "worker.npz"),)]
    if interrupted:
        stop = {"MULTI_WORKER_STOP_AFTER_FIRST_EPOCH": "1"}
        run_together([(*run, {**job, **stop}) for run, job in zip(runs, job_environments(backend))], backend, status=3)
        saved = tmp_path / "job" / ".resume" / "03_encoder" / "state" / "training_metadata.json"
        assert json.loads(saved.read_text())["epoch"] == 1  # the chief's state; the other worker kept its own elsewhere
        assert not (tmp_path / "chief.npz").exists()
    errors = run_together([(*run, job) for run, job in zip(runs, job_environments(backend))], backend)
    assert ("Resuming from the training state" in errors[0]) == interrupted
    assert not any("INFO:tensorflow" in output for output in errors), "training logs every all-reduce"

    one, chief_weights, worker_weights = (np.load(tmp_path / f"{name}.npz") for name in ("one", "chief", "worker"))
    assert len(one.files) == len(chief_weights.files) > 10
    for name in one.files:  # 4 steps of AdamW at 1e-2 on a global batch of 8, split over 2 workers or not
        np.testing.assert_allclose(chief_weights[name], one[name], atol=2e-5, rtol=1e-4)
        np.testing.assert_array_equal(worker_weights[name], chief_weights[name])
    config = json.loads((tmp_path / "job" / "03_encoder" / "config.json").read_text())
    assert config == {"distribution": "multi_worker", "replicas": 2, "global_batch_size": 8}

    # The chief published 03_encoder (its training state removed after training); the other worker
    # wrote into a temporary folder of its own, gone when it ended.
    written = sorted(p.relative_to(tmp_path / "job").as_posix() for p in (tmp_path / "job").rglob("*") if p.is_file())
    assert written == ["03_encoder/" + name for name in
                       ("config.json", "history.csv", "manifest.json", "metrics.json", "mlm.weights.h5")]
    own = re.search(r"training state go to (\S+),", errors[1])
    assert own and not Path(own.group(1)).exists() and "Not the chief" not in errors[0]


@pytest.fixture
def second_worker(monkeypatch):
    """This process described as worker 1 of a TensorFlow job of two workers."""
    for name in JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                                "task": {"type": "worker", "index": 1}}))


def test_a_worker_that_is_not_the_chief_writes_nothing_into_the_artifacts_folder(tmp_path, second_worker):
    assert distribution.multi_worker_job("tensorflow") == (2, 1) and not distribution.is_chief()
    staging = stage_artifact(tmp_path / "artifacts", "03_encoder")
    write_json(staging / "config.json", {})
    published = publish_artifact(staging)
    resume = resume_folder(tmp_path / "artifacts", "03_encoder")
    assert published.name == "03_encoder" and (published / "manifest.json").is_file()
    assert tmp_path not in published.parents and tmp_path not in resume.parents
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("backend, environment, message", [
    ("tensorflow", {}, "needs TF_CONFIG on every machine"),
    ("tensorflow", {"TF_CONFIG": "{not json"}, "TF_CONFIG is not a JSON object"),
    ("tensorflow", {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'},
     "is not one of its cluster's"),
    ("jax", {}, "needs the coordinator's settings"),
    ("jax", {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"},
     "settings are incomplete"),
])
def test_multi_worker_without_a_job_description_fails_at_once(monkeypatch, backend, environment, message):
    for name in JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(distribution.keras.backend, "backend", lambda: backend)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        distribution.data_parallel("multi_worker")
    assert "\n" not in str(error.value)


def test_a_job_of_several_workers_needs_distribution_multi_worker(second_worker):
    with pytest.raises(ValueError, match="describes a job of 2 workers .* DISTRIBUTION is 'none'"):
        distribution.data_parallel("none")


def test_a_global_batch_must_divide_by_the_replicas():
    distribution.check_global_batch(64, 4)
    with pytest.raises(ValueError, match=r"A global batch of 30 does not divide by the 4 replicas: .* 28 or 32"):
        distribution.check_global_batch(30, 4)
    assert distribution.worker_part(np.arange(6)).tolist() == list(range(6))  # one process: all of it


def test_the_runner_passes_the_job_to_the_kernel_and_keeps_a_workers_notebooks_out(tmp_path, second_worker, capsys):
    import nbformat

    from nbhelpers.run import run_series

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('ARTIFACTS_DIR: str = "artifacts"  # where artifacts go', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import os\nprint('job:', os.environ['TF_CONFIG'])"),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "notebooks").mkdir()
    nbformat.write(notebook, tmp_path / "notebooks" / "03_pretrain_encoder.ipynb")
    (executed,) = run_series([tmp_path / "notebooks" / "03_pretrain_encoder.ipynb"], {}, tmp_path / "artifacts",
                             quiet=True)
    assert tmp_path not in executed.parents and not (tmp_path / "artifacts").exists()
    assert '"index": 1' in "".join(o.get("text", "") for o in nbformat.read(executed, 4).cells[-1].outputs)
    assert f"the executed notebooks go to {executed.parent}" in capsys.readouterr().out
    shutil.rmtree(executed.parent)
