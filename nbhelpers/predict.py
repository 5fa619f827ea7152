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
from pathlib import Path

import nbhelpers  # noqa: F401  (quiet TensorFlow logs)


def read_lines(stream):
    """Lines of a binary stream as str, decoded as UTF-8 with invalid bytes replaced."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=None)
    return [line.rstrip("\n") for line in text]


def load_model(path):
    """Load a `.keras` raw-text model, or a SavedModel folder (its `serve` signature)."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"Model {path} not found: pass artifacts/05_export/sentiment.keras or its saved_model/.")
    if path.is_dir():
        import tensorflow as tf

        return tf.saved_model.load(str(path))
    from nbhelpers.export import load_text_model

    return load_text_model(path)


def main(argv=None, stdin=None, stdout=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .keras file or a SavedModel folder from notebook 05")
    parser.add_argument("texts", nargs="*", help="texts to classify (default: one per line from stdin)")
    parser.add_argument("--file", type=Path, help="read texts from this file, one per line")
    parser.add_argument("--batch-size", type=int, default=512, help="texts per model call")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability above which a text is positive")
    args = parser.parse_args(argv)
    stdout = stdout or sys.stdout
    if args.texts and args.file:
        parser.error("give texts as arguments or --file, not both")
    if args.file:
        with open(args.file, "rb") as f:
            texts = read_lines(f)
    elif args.texts:
        texts = args.texts
    else:
        texts = read_lines(stdin or sys.stdin.buffer)

    from nbhelpers.export import predict_texts

    probabilities = predict_texts(load_model(args.model), texts, batch_size=args.batch_size)
    for text, probability in zip(texts, probabilities):
        label = "positive" if probability > args.threshold else "negative"
        record = {"text": text, "probability": round(float(probability), 6), "label": label}
        stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
