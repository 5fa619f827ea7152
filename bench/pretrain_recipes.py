"""MLM validation accuracy against wall minutes: the 2022 guide's pretraining recipe against ours.

The recipes pretrain the guide's encoder size (3 layers, width 128, 2 heads, FFN 512) on the
same corpus, on the same machine, one after the other in one run, for the same wall-clock
budget, and are evaluated on held-out text `--evaluations` times:

- **the guide's**: the BERT uncased vocabulary (30,522 entries), each text cut into pieces of
  about 100 words (the guide's WikiText paragraphs) and truncated or padded to 128 tokens, 25
  predictions per sequence, post-layer-norm blocks, dropout 0.1, batch 64, AdamW at a constant
  5e-4. (Tokens are prepared once for both recipes: the guide's per-epoch tokenization is timed
  by `bench/speed.py`, not here.)
- **ours** (the `cpu` profile's settings): a WordPiece vocabulary of 8,000 computed from the
  corpus, text packed end to end into 64-token sequences, 13 predictions per sequence,
  pre-layer-norm blocks, no dropout, batch 64, AdamW peaking at 1e-3 with warm-up and a cosine
  decay that ends with the budget.
- **ours with the BERT vocabulary**: the same, but the guide's vocabulary: the computed
  vocabulary's own effect.

MLM accuracy is reported over all masked targets and over targets other than `[UNK]`. The two
vocabularies cut text differently, so the same accuracy is not the same task: read the curves'
shapes and the fine-tuning results of notebook 04 beside them.

    .venv/bin/python bench/pretrain_recipes.py --data-dir ../shared/data --minutes 8 --recipes guide ours \\
        --out bench/results/pretrain-recipes-cpu-2-cores.json
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np

from nbhelpers.batches import mlm_dataset
from nbhelpers.data import find_vocabulary, load_corpus, resolve_data_dir
from nbhelpers.masking import make_mask_generator
from nbhelpers.metrics import MaskedTokenAccuracy
from nbhelpers.models import build_encoder, build_pretraining_model
from nbhelpers.schedules import learning_rate, seconds_per_step, steps_for_minutes
from nbhelpers.tokenization import compute_vocabulary, make_tokenizer, pack_texts, tokenize_texts
from nbhelpers.training import WallClock, set_seed, use_xla

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib.py, beside this script: bench/ is no package
from benchlib import describe_machine  # noqa: E402

MODEL = dict(num_layers=3, model_dim=128, num_heads=2, intermediate_dim=512)
GUIDE_PIECE_WORDS = 100
VALIDATION_SEQUENCES = 1024


@dataclasses.dataclass(frozen=True)
class Recipe:
    key: str
    name: str
    vocabulary: str  # "bert" or "computed"
    sequence_length: int
    predictions: int
    packed: bool
    normalize_first: bool
    dropout: float
    batch_size: int
    peak_learning_rate: float
    schedule: str


RECIPES = (
    Recipe("guide", "the guide's recipe", "bert", 128, 25, False, False, 0.1, 64, 5e-4, "constant"),
    Recipe("ours", "ours (cpu profile)", "computed", 64, 13, True, True, 0.0, 64, 1e-3, "warmup_cosine"),
    # Ours with the guide's vocabulary: what the computed vocabulary itself is worth.
    Recipe("ours-bert", "ours, BERT vocabulary", "bert", 64, 13, True, True, 0.0, 64, 1e-3, "warmup_cosine"),
)


def pieces(texts, words=GUIDE_PIECE_WORDS):
    """Cut texts into pieces of about `words` words, like the guide's WikiText paragraphs."""
    out = []
    for text in texts:
        split = text.split()
        out += [" ".join(split[i : i + words]) for i in range(0, len(split), words)]
    return out


def prepare(recipe, train_texts, valid_texts, data_dir, vocabulary_size):
    vocabulary = (
        find_vocabulary(data_dir) if recipe.vocabulary == "bert"
        else compute_vocabulary(train_texts, vocabulary_size)
    )
    tokenizer = make_tokenizer(vocabulary, recipe.sequence_length)
    if recipe.packed:
        arrays = pack_texts(tokenizer, train_texts), pack_texts(tokenizer, valid_texts)
    else:
        arrays = tokenize_texts(tokenizer, pieces(train_texts)), tokenize_texts(tokenizer, pieces(valid_texts))
    return tokenizer, arrays


def train_for_minutes(recipe, tokenizer, train_tokens, valid_tokens, minutes, evaluations, seed, calibration_steps=40):
    """Pretrain for `minutes` of wall time; returns the per-evaluation history."""
    set_seed(seed)
    masker = make_mask_generator(tokenizer, 0.2, recipe.predictions)
    train = mlm_dataset(train_tokens, masker, recipe.batch_size, shuffle_seed=seed, mask_seed=seed).repeat()
    # The same number of held-out sequences for every recipe, few enough that evaluating stays a
    # small share of the budget (the guide's padded pieces make a validation split many times ours).
    valid_batches = min(VALIDATION_SEQUENCES // recipe.batch_size, len(valid_tokens) // recipe.batch_size)
    valid = mlm_dataset(valid_tokens, masker, recipe.batch_size, mask_seed=seed + 1).take(valid_batches).cache()
    encoder = build_encoder(
        tokenizer.vocabulary_size(), recipe.sequence_length, dropout=recipe.dropout,
        normalize_first=recipe.normalize_first, **MODEL,
    )
    model = build_pretraining_model(encoder, recipe.predictions)
    step_seconds = seconds_per_step(model, train, "sparse_categorical_crossentropy", use_xla(),
                                    steps=calibration_steps, warmup_steps=max(1, calibration_steps // 4))
    steps = steps_for_minutes(minutes, step_seconds, evaluations, valid_batches)
    per_evaluation = steps // evaluations
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.AdamW(
            learning_rate(recipe.peak_learning_rate, recipe.schedule, per_evaluation * evaluations)
        ),
        weighted_metrics=[MaskedTokenAccuracy(name="sparse_categorical_accuracy"),
                          MaskedTokenAccuracy(ignore_id=tokenizer.token_to_id("[UNK]"), name="known_token_accuracy")],
        jit_compile=use_xla(),
    )
    clock = WallClock()
    history = model.fit(train, validation_data=valid, epochs=evaluations, steps_per_epoch=per_evaluation,
                        callbacks=[clock], verbose=0, shuffle=False).history
    return {
        "minutes": history["minutes"],
        "val_mlm_accuracy": history["val_sparse_categorical_accuracy"],
        "val_known_token_accuracy": history["val_known_token_accuracy"],
        "val_loss": history["val_loss"],
        "steps": per_evaluation * evaluations,
        "seconds_per_step": step_seconds,
        "train_sequences": len(train_tokens),
        "useful_token_share": float(np.mean(train_tokens != 0)),
        "vocabulary_size": tokenizer.vocabulary_size(),
        "encoder_parameters": encoder.count_params(),
    }


def plot(results, path):
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    for name, result in results.items():
        axis.plot(result["minutes"], result["val_mlm_accuracy"], marker="o", label=f"{name}: all targets")
        axis.plot(result["minutes"], result["val_known_token_accuracy"], linestyle="--",
                  label=f"{name}: targets other than [UNK]")
    axis.set_xlabel("wall minutes (2 CPU cores)")
    axis.set_ylabel("validation MLM accuracy")
    axis.set_title("Pretraining: accuracy per CPU minute")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="", help="data folder (empty: the embedded synthetic data)")
    parser.add_argument("--corpus", default="movie_reviews_and_sst2")
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget of each recipe")
    parser.add_argument("--evaluations", type=int, default=8)
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--calibration-steps", type=int, default=40,
                        help="steps timed to turn the budget into a step count (after a quarter as many to warm up)")
    parser.add_argument("--recipes", nargs="+", choices=[r.key for r in RECIPES], default=[r.key for r in RECIPES],
                        help="which recipes to run, in this order")
    parser.add_argument("--out", type=Path, help="write the results as JSON here (and a PNG beside it)")
    args = parser.parse_args(argv)

    data_dir = resolve_data_dir(args.data_dir, "artifacts")
    train_texts, valid_texts = load_corpus(data_dir, args.corpus if args.data_dir else "wikitext")
    results = {}
    for recipe in (r for key in args.recipes for r in RECIPES if r.key == key):
        tokenizer, (train_tokens, valid_tokens) = prepare(recipe, train_texts, valid_texts, data_dir, args.vocabulary_size)
        results[recipe.name] = {
            "recipe": dataclasses.asdict(recipe),
            **train_for_minutes(recipe, tokenizer, train_tokens, valid_tokens, args.minutes, args.evaluations, args.seed,
                              args.calibration_steps),
        }
        result = results[recipe.name]
        print(f"{recipe.name:<22} {result['steps']:>6} steps  {result['minutes'][-1]:5.1f} min  "
              f"val MLM {result['val_mlm_accuracy'][-1]:.3f}  non-[UNK] {result['val_known_token_accuracy'][-1]:.3f}",
              flush=True)
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe_machine(),
        "corpus": args.corpus if args.data_dir else "synthetic wikitext",
        "minutes_per_recipe": args.minutes,
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        plot(results, args.out.with_suffix(".png"))
        print("wrote", args.out, "and", args.out.with_suffix(".png"))
    return record


if __name__ == "__main__":
    main()
