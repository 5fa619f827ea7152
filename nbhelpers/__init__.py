"""Helpers for the notebook series "pretrain a transformer from scratch, then fine-tune it".

Where things live:

- `nbhelpers.data`: loaders for SST-2, WikiText and vocabulary files, and `resolve_data_dir`.
- `nbhelpers.synthetic`: the seeded, offline default data written in those same formats.
- `nbhelpers.tokenization`: the WordPiece tokenizer and MLM masking pipeline.
- `nbhelpers.baseline`: the bag-of-words baseline.
- `nbhelpers.models`: the encoder, MLM pretraining model and classifier.
- `nbhelpers.training`: precision policy, seeding and a logged, resumable `fit`.
- `nbhelpers.export`: the raw-text model that notebook 05 saves.
- `nbhelpers.plots`: training curves.
- `nbhelpers.notebook_hygiene`: what a committed notebook may hold.
- `nbhelpers.artifacts`: atomic artifact folders and JSON files.
- `nbhelpers.params`: checks for notebook parameters.
- `nbhelpers.run`: runs the series with papermill (`python -m nbhelpers.run --profile tiny`).
"""

import os

# TensorFlow runs the text preprocessing; keep its C++ start-up chatter out of notebooks.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
