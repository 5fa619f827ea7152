"""The tiny profile's lesson over several seeds: does pretraining pay where labels are few?

For each pair of a data seed (the embedded synthetic data, `nbhelpers.synthetic`) and a training
seed (`SEED` of every notebook), this writes the synthetic data, runs notebooks 01-04 with the
tiny profile on it (`DATA_DIR` pointing at it), and reads notebook 04's `metrics.json`: the
label-budget curve of the three arms at each budget, and the three arms with all labels. It
prints the mean ± standard deviation over the runs as a markdown table (the one in
`docs/results/tiny-lesson.md`) and writes every run's numbers to `--out`.

    .venv/bin/python bench/tiny_lesson.py --runs 5 --out bench/results/tiny-lesson.json

Each run takes a few minutes on 2 CPU cores; run it alone on an idle machine.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from nbhelpers.artifacts import read_json
from nbhelpers.label_budget import ARMS
from nbhelpers.run import load_profile, notebook_paths, run_series
from nbhelpers.synthetic import DEFAULT_SEED, write_synthetic_data

# The first run is the series as it comes (the default data seed, SEED 42); the others vary both.
SEED_PAIRS = [(DEFAULT_SEED, 42), (1, 43), (2, 44), (3, 45), (4, 46), (5, 47), (6, 48), (7, 49)]


def run_once(folder, data_seed, seed, profile="tiny"):
    """Notebooks 01-04 on synthetic data of `data_seed` with `SEED = seed`; returns notebook 04's
    accuracies: `{"curve": {arm: {budget: accuracy}}, "all labels": {arm: accuracy}, "labels": n}`."""
    data = folder / "data"
    write_synthetic_data(data, seed=data_seed)
    params = {**load_profile(profile), "DATA_DIR": str(data), "SEED": seed}
    started = time.perf_counter()
    run_series(notebook_paths(only=["01", "02", "03", "04"]), params, folder / "artifacts")
    metrics = read_json(folder / "artifacts" / "04_classifier" / "metrics.json")
    curve = metrics["label_budget_curve"]["accuracy"]
    return {
        "data_seed": data_seed, "seed": seed, "seconds_01_to_04": round(time.perf_counter() - started, 1),
        # One curve seed per budget in the tiny profile (CURVE_SEEDS: 1): its mean is that run.
        "curve": {arm: {budget: float(np.mean(values)) for budget, values in per_budget.items()}
                  for arm, per_budget in curve.items()},
        "all labels": metrics["dev_accuracies"],
        "labels": read_json(folder / "artifacts" / "04_classifier" / "config.json")["train_labels"],
    }


def table(runs):
    """A markdown table: one row per budget and one for all labels, mean ± sd over `runs` per arm,
    and the pretrained arm's gain over the better control (mean ± sd of the per-run gain)."""
    rows = [(f"{budget} labels", {arm: [run["curve"][arm][budget] for run in runs] for arm in ARMS})
            for budget in runs[0]["curve"][ARMS[0]]]
    rows.append((f"all {runs[0]['labels']:,} labels", {arm: [run["all labels"][arm] for run in runs] for arm in ARMS}))
    lines = ["| labels | " + " | ".join(ARMS) + " | pretrained − better control |", "|---" * (len(ARMS) + 2) + "|"]
    for name, values in rows:
        gains = np.asarray(values[ARMS[2]]) - np.maximum(values[ARMS[0]], values[ARMS[1]])
        cells = [f"{np.mean(v):.3f} ± {np.std(v):.3f}" for v in values.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {gains.mean():+.3f} ± {gains.std():.3f} (min {gains.min():+.3f}) |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help=f"seed pairs to run (at most {len(SEED_PAIRS)})")
    parser.add_argument("--out", type=Path, default=None,
                        help="write every run's numbers here (JSON); runs already there are not repeated")
    args = parser.parse_args()
    # Runs already in --out are kept (the measurement resumes after an interruption).
    runs = json.loads(args.out.read_text()) if args.out and args.out.is_file() else []
    done = {(run["data_seed"], run["seed"]) for run in runs}
    for data_seed, seed in SEED_PAIRS[: args.runs]:
        if (data_seed, seed) in done:
            continue
        with tempfile.TemporaryDirectory() as folder:
            runs.append(run_once(Path(folder), data_seed, seed))
        print(json.dumps(runs[-1]), flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"\nmean ± sd over {len(runs)} runs (data seed, SEED): {[(r['data_seed'], r['seed']) for r in runs]}\n")
    print(table(runs))


if __name__ == "__main__":
    main()
