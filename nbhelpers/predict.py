"""Command line: predict sentiment for texts with an exported model, as JSON lines.

    python -m nbhelpers.predict artifacts/05_export/sentiment.keras "A wonderful film." "Dull."
    python -m nbhelpers.predict artifacts/05_export/sentiment.keras < reviews.txt
    python -m nbhelpers.predict artifacts/05_export/saved_model --file reviews.txt --batch-size 1024

Texts come from the arguments, or one per line from `--file` or standard input. Every input
line gives one output line `{"text": ..., "probability": ..., "label": "positive"|"negative"}`,
in order; empty lines are predicted too, never skipped. Input is read as UTF-8; invalid bytes
become U+FFFD (the replacement character) rather than stopping the run. Texts longer than the
model's sequence length are truncated to their first tokens.
"""

import argparse
import io
import json
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import nbhelpers  # noqa: F401  (quiet TensorFlow logs)
from nbhelpers.artifacts import MANIFEST_FILE, ArtifactError, verify_artifact
from nbhelpers.cli import DEBUG_HELP, UserError, run_command

# Where a good copy of a model comes from, said when the one given is damaged.
GOOD_COPY = ("A good copy is in the artifacts folder of the run that trained it (artifacts/05_export/); "
             "`python -m nbhelpers.run --only 05` writes a new one")
MODEL_FOLDER = ("a model folder (a TensorFlow SavedModel) holds saved_model.pb and variables/; notebook 05 "
                "writes one as artifacts/05_export/saved_model, beside sentiment.keras")


def read_lines(stream):
    """Lines of a binary stream as str, decoded as UTF-8 with invalid bytes replaced."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=None)
    return [line.rstrip("\n") for line in text]


def _version(text):
    from packaging.version import InvalidVersion, Version

    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def _newer_than_installed(written):
    """`package==version` for each library in `written` newer than the installed one."""
    newer = []
    for package, version in written.items():
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
        if version and _version(version) and _version(installed) and _version(version) > _version(installed):
            newer.append(f"{package} {version} (installed: {installed})")
    return newer


def _written_versions(path):
    """The library versions a model was saved with: the `.keras` file's own record, and the
    manifest of the artifact folder it sits in, where there is one."""
    written = {}
    manifest = path.parent / MANIFEST_FILE
    if manifest.is_file():
        try:
            versions = json.loads(manifest.read_text()).get("versions", {})
            written.update({k: v for k, v in versions.items() if k in ("keras", "keras-hub", "tensorflow")})
        except ValueError:
            pass
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                written["keras"] = json.loads(archive.read("metadata.json")).get("keras_version", written.get("keras"))
        except (zipfile.BadZipFile, KeyError, ValueError, OSError):
            pass
    return written


def _check_keras_file(path):
    """Refuse a `.keras` file that is not a whole Keras zip, or differs from its artifact's manifest."""
    damaged = f"{path} is damaged (truncated, or a partial copy or download)"
    if not zipfile.is_zipfile(path):
        raise UserError(f"{damaged}: it is not a complete .keras zip. {GOOD_COPY}.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if archive.testzip() is not None or not {"config.json", "metadata.json"} <= names:
                raise zipfile.BadZipFile
    except (zipfile.BadZipFile, OSError, EOFError):
        raise UserError(f"{damaged}: its contents fail their checksums. {GOOD_COPY}.") from None


def _check_artifact(path):
    """Where the model sits in a published artifact folder, check it against the folder's manifest."""
    folder = path if path.is_dir() and path.name != "saved_model" else path.parent
    if (folder / MANIFEST_FILE).is_file() and folder.name == "05_export":
        try:
            verify_artifact(folder, "05_export")
        except ArtifactError as exc:
            raise UserError(f"{exc} {GOOD_COPY}.") from None


def _load_failed(path, exc):
    """The error to show for a model Keras could not load: the newer library it needs, where known."""
    newer = _newer_than_installed(_written_versions(path))
    if newer:
        return UserError(f"{path} was saved with {', '.join(newer)}: it needs a newer version; upgrade with "
                         "`pip install -U keras keras-hub tensorflow`.")
    return UserError(f"Could not load the model {path}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")


def load_model(path):
    """Load a `.keras` raw-text model, or a SavedModel folder (its `serve` signature).

    Raises:
        UserError: the path does not exist, is not a model, is damaged, or needs newer libraries;
            the message says which, and what to pass instead.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"Model {path} not found: pass artifacts/05_export/sentiment.keras or its saved_model/.")
    _check_artifact(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            hints = [str(path / n) for n in ("sentiment.keras", "saved_model") if (path / n).exists()]
            did_you_mean = f" (did you mean {' or '.join(hints)}?)" if hints else ""
            raise UserError(f"{path} is a folder but not a model{did_you_mean}: {MODEL_FOLDER}.")
        import tensorflow as tf

        try:
            return tf.saved_model.load(str(path))
        except Exception as exc:  # noqa: BLE001  (TensorFlow raises many kinds for a bad SavedModel)
            raise UserError(f"{path} is a damaged SavedModel ({type(exc).__name__}). {GOOD_COPY}.") from exc
    if path.suffix != ".keras":
        raise UserError(f"{path} is not a model: pass a .keras file or a SavedModel folder ({MODEL_FOLDER}).")
    _check_keras_file(path)
    from nbhelpers.export import load_text_model

    try:
        return load_text_model(path)
    except Exception as exc:  # noqa: BLE001  (Keras raises many kinds for a model it cannot rebuild)
        raise _load_failed(path, exc) from exc


def read_texts(args, stdin):
    """The texts to classify: the arguments, the lines of `--file`, or the lines of `stdin`."""
    if args.file:
        try:
            with open(args.file, "rb") as f:
                return read_lines(f)
        except OSError as exc:
            raise UserError(f"Cannot read texts from {args.file}: {exc.strerror or exc}.") from None
    if args.texts:
        return args.texts
    return read_lines(stdin or sys.stdin.buffer)


def main(argv=None, stdin=None, stdout=None):
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .keras file or a SavedModel folder from notebook 05")
    parser.add_argument("texts", nargs="*", help="texts to classify (default: one per line from stdin)")
    parser.add_argument("--file", type=Path, help="read texts from this file, one per line")
    parser.add_argument("--batch-size", type=int, default=512, help="texts per model call")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability above which a text is positive")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    args = parser.parse_args(argv)
    stdout = stdout or sys.stdout
    if args.texts and args.file:
        parser.error("give texts as arguments or --file, not both")
    texts = read_texts(args, stdin)  # first: an unreadable file is found without loading TensorFlow
    model = load_model(args.model)

    from nbhelpers.export import predict_texts

    probabilities = predict_texts(model, texts, batch_size=args.batch_size)
    for text, probability in zip(texts, probabilities):
        label = "positive" if probability > args.threshold else "negative"
        record = {"text": text, "probability": round(float(probability), 6), "label": label}
        stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main, "nbhelpers.predict"))
