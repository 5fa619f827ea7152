"""Every command line answers bad input with one clear line on stderr and a non-zero exit status.

Each case runs the real command in a new process, on real files."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata

import keras
import pytest

from nbhelpers.artifacts import publish_artifact, stage_artifact, write_json
from nbhelpers.export import build_text_model
from nbhelpers.models import build_classifier, build_encoder
from nbhelpers.tokenization import make_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(module, *args, env=None):
    """Run `python -m module args`; return (exit status, stderr lines)."""
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, **(env or {})})
    return done.returncode, done.stderr.splitlines()


def _one_line(module, *args, env=None):
    status, lines = _command(module, *args, env=env)
    assert status == 1 and len(lines) == 1, (status, lines)
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, hand_vocabulary):
    folder = tmp_path_factory.mktemp("model")
    keras.utils.set_random_seed(0)
    encoder = build_encoder(len(hand_vocabulary), 16, 1, 16, 2, 32, 0.0)
    build_text_model(make_tokenizer(hand_vocabulary, 16), build_classifier(encoder)).save(folder / "sentiment.keras")
    return folder / "sentiment.keras"


GOOD_COPY = ("A good copy is in the artifacts folder of the run that trained it (artifacts/05_export/); "
             "`python -m nbhelpers.run --only 05` writes a new one.")


def test_predict_a_model_path_that_does_not_exist(tmp_path):
    assert _one_line("nbhelpers.predict", tmp_path / "nope.keras", "hi") == (
        f"nbhelpers.predict: error: Model {tmp_path / 'nope.keras'} not found: "
        "pass artifacts/05_export/sentiment.keras or its saved_model/.")


def test_predict_a_folder_that_is_not_a_model(tmp_path):
    folder = tmp_path / "04_classifier"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert _one_line("nbhelpers.predict", folder, "hi") == (
        f"nbhelpers.predict: error: {folder} is a folder but not a model: a model folder (a TensorFlow SavedModel) "
        "holds saved_model.pb and variables/; notebook 05 writes one as artifacts/05_export/saved_model, "
        "beside sentiment.keras.")


def test_predict_an_export_folder_suggests_the_model_inside(tmp_path, model_file):
    shutil.copy(model_file, tmp_path / "sentiment.keras")
    line = _one_line("nbhelpers.predict", tmp_path, "hi")
    assert f"is a folder but not a model (did you mean {tmp_path / 'sentiment.keras'}?)" in line


def test_predict_a_truncated_keras_file(tmp_path, model_file):
    truncated = tmp_path / "sentiment.keras"
    truncated.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    assert _one_line("nbhelpers.predict", truncated, "hi") == (
        f"nbhelpers.predict: error: {truncated} is damaged (truncated, or a partial copy or download): "
        f"it is not a complete .keras zip. {GOOD_COPY}")


def test_predict_a_bit_flipped_keras_file(tmp_path, model_file):
    flipped = tmp_path / "sentiment.keras"
    data = bytearray(model_file.read_bytes())
    with zipfile.ZipFile(model_file) as archive:  # flip a bit inside the weights' data
        weights = archive.getinfo("model.weights.h5")
    data[weights.header_offset + 30 + len(weights.filename) + weights.compress_size // 2] ^= 0x10
    flipped.write_bytes(bytes(data))
    assert _one_line("nbhelpers.predict", flipped, "hi") == (
        f"nbhelpers.predict: error: {flipped} is damaged (truncated, or a partial copy or download): "
        f"its contents fail their checksums. {GOOD_COPY}")


def test_predict_a_damaged_file_in_a_published_export_names_the_notebook(tmp_path, model_file):
    staging = stage_artifact(tmp_path, "05_export")
    shutil.copy(model_file, staging / "sentiment.keras")
    write_json(staging / "config.json", {})
    folder = publish_artifact(staging)
    with open(folder / "sentiment.keras", "ab") as f:  # zip readers ignore bytes appended; the manifest does not
        f.write(b"junk")
    line = _one_line("nbhelpers.predict", folder / "sentiment.keras", "hi")
    assert line.startswith("nbhelpers.predict: error: 05's artifact is damaged: re-run notebook 05 "
                           "(notebooks/05_export_raw_text.ipynb). 05_export/sentiment.keras grew")
    assert line.endswith(GOOD_COPY)


def test_predict_a_model_that_needs_a_newer_keras(tmp_path, model_file):
    future = tmp_path / "sentiment.keras"
    with zipfile.ZipFile(model_file) as source, zipfile.ZipFile(future, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "metadata.json":
                data = json.dumps({**json.loads(data), "keras_version": "9.0.0"}).encode()
            elif item.filename == "config.json":  # a layer this Keras does not have
                data = data.replace(b'"class_name": "Dense"', b'"class_name": "DenseFromTheFuture"')
            target.writestr(item, data)
    assert _one_line("nbhelpers.predict", future, "hi") == (
        f"nbhelpers.predict: error: {future} was saved with keras 9.0.0 (installed: {metadata.version('keras')}): "
        "it needs a newer version; upgrade with `pip install -U keras keras-hub tensorflow`.")


def test_predict_an_unreadable_input_file(tmp_path, model_file):
    assert _one_line("nbhelpers.predict", model_file, "--file", tmp_path) == (
        f"nbhelpers.predict: error: Cannot read texts from {tmp_path}: Is a directory.")
    assert _one_line("nbhelpers.predict", model_file, "--file", tmp_path / "reviews.txt") == (
        f"nbhelpers.predict: error: Cannot read texts from {tmp_path / 'reviews.txt'}: No such file or directory.")


def test_debug_shows_the_traceback(tmp_path):
    for how in ({"args": ["--debug"]}, {"env": {"NBHELPERS_DEBUG": "1"}}):
        status, lines = _command("nbhelpers.predict", tmp_path / "nope.keras", "hi", *how.get("args", []),
                                 env=how.get("env"))
        assert status == 1 and lines[0] == "Traceback (most recent call last):" and "UserError" in lines[-1]


def test_run_a_profile_that_does_not_parse(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text('DATA_DIR: ""\nSEED: [1, 2\nPRETRAIN_EPOCHS: 3\n')
    assert _one_line("nbhelpers.run", "--profile", profile, "--artifacts", tmp_path / "a") == (
        f"nbhelpers.run: error: Profile {profile} is not valid YAML: line 3, column 16: expected ',' or ']', "
        "but got ':' (while parsing a flow sequence on line 2).")


def test_run_a_profile_that_does_not_exist(tmp_path):
    line = _one_line("nbhelpers.run", "--profile", tmp_path / "nope.yaml")
    assert line.startswith(f"nbhelpers.run: error: Profile '{tmp_path / 'nope.yaml'}' not found")


def test_run_a_near_miss_parameter_name(tmp_path):
    assert _one_line("nbhelpers.run", "-p", "PRETRAIN_EPOCS", "3", "--artifacts", tmp_path / "a") == (
        "nbhelpers.run: error: Unknown parameter PRETRAIN_EPOCS (did you mean PRETRAIN_EPOCHS?).")
    assert not (tmp_path / "a").exists()


def test_run_a_data_folder_that_does_not_exist(tmp_path):
    line = _one_line("nbhelpers.run", "-p", "DATA_DIR", tmp_path / "data", "--artifacts", tmp_path / "a")
    assert line.startswith(f"nbhelpers.run: error: DATA_DIR {tmp_path / 'data'} does not exist: pass a data folder")


def test_run_into_a_folder_another_run_writes_stops_at_once_naming_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nbhelpers.artifacts import lock_artifacts; "
                               "lock_artifacts(sys.argv[1]); print('locked', flush=True); time.sleep(60)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = _one_line("nbhelpers.run", "--only", "01", "--artifacts", tmp_path)
        assert line.startswith(f"nbhelpers.run: error: {tmp_path} is being written by another run: process {holder.pid} on ")
        assert f"(python -c {tmp_path}), started " in line and line.endswith(f"(the lock file is {tmp_path / '.lock'}).")
        assert not (tmp_path / "01_setup_and_baseline.ipynb").exists()
    finally:
        holder.kill()
        holder.wait()


def test_acquire_a_data_folder_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("")
    assert _one_line("nbhelpers.acquire", "--data-dir", tmp_path / "data", "sst2") == (
        f"nbhelpers.acquire: error: --data-dir {tmp_path / 'data'} is a file, not a folder: "
        "pass the folder to fill (it is created if needed).")


def test_acquire_sources_that_do_not_parse(tmp_path):
    line = _one_line("nbhelpers.acquire", "--data-dir", tmp_path, "sst2", env={"NBHELPERS_ACQUIRE_SOURCES": "{not json"})
    assert line.startswith("nbhelpers.acquire: error: NBHELPERS_ACQUIRE_SOURCES is not a JSON object")


def test_run_into_an_artifacts_path_that_is_a_file(tmp_path):
    (tmp_path / "artifacts").write_text("")
    assert _one_line("nbhelpers.run", "--only", "01", "--artifacts", tmp_path / "artifacts") == (
        f"nbhelpers.run: error: --artifacts {tmp_path / 'artifacts'} is a file, not a folder: "
        "pass the folder to write into.")
