"""Helpers for the notebook series "pretrain a transformer from scratch, then fine-tune it".

Where things live:

- `nbhelpers.data`: loaders for SST-2, WikiText, vocabulary files and labelled out-of-domain sentences, and `resolve_data_dir`.
- `nbhelpers.synthetic`: the seeded, offline default data written in those same formats.
- `nbhelpers.acquire`: downloads with checksums and mirrors (`python -m nbhelpers.acquire`).
- `nbhelpers.tokenization`: the WordPiece tokenizer, vocabularies, packing and length bucketing.
- `nbhelpers.masking`: seeded dynamic MLM masking inside `tf.data`.
- `nbhelpers.accelerator_masking`: the same masking inside the compiled step, on any backend.
- `nbhelpers.replaced_token_detection`: ELECTRA's pretraining objective (a generator and a detector).
- `nbhelpers.distribution`: data parallelism over devices (`data_parallel`).
- `nbhelpers.baseline`: the bag-of-words baseline.
- `nbhelpers.models`: the encoder, MLM pretraining model and classifier.
- `nbhelpers.word_vectors`: word vectors from co-occurrence counts, a start for the token embedding.
- `nbhelpers.metrics`: MLM accuracy in one pass over the vocabulary, with or without `[UNK]` targets.
- `nbhelpers.optimizers`: `FusedAdamW`, Keras's AdamW in one pass over each variable on TensorFlow.
- `nbhelpers.training`: precision policy, seeding, schedules, time budgets and a logged, resumable `fit`.
- `nbhelpers.label_budget`: the label-budget curve of notebook 04 (three arms, budgets, seeds).
- `nbhelpers.fill_mask`: the pretrained model's top guesses for a masked word.
- `nbhelpers.export`: the raw-text model that notebook 05 saves; `nbhelpers.predict` its CLI.
- `nbhelpers.out_of_domain`: notebook 05's zero-shot check on labelled sentences from outside films.
- `nbhelpers.plots`: training curves, accuracy bars and the label-budget curve.
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
