"""Peak memory of notebook 02 with the full profile's settings, at growing corpus sizes.

The full profile tokenizes WikiText-103 (about 100M words) once into an in-memory array. This
machine has only WikiText-2's validation and test files, so the training split is stood in for
by their paragraphs repeated `copies` times (the same text statistics, any size); the validation
split is WikiText-2's validation file. Notebook 02 runs under papermill exactly as
`python -m nbhelpers.run --profile full --only 02` runs it, while a thread polls the resident
memory (RSS) of the kernel's process tree; the record gives the peak and the corpus size, so
that the growth per paragraph can be extrapolated to WikiText-103.

    python bench/notebook02_memory.py --copies 1 10 --out bench/results/notebook02-memory.json
"""

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib.py, beside this script: bench/ is no package
from benchlib import describe_machine  # noqa: E402
from nbhelpers.artifacts import write_json  # noqa: E402
from nbhelpers.data import WIKITEXT_MIN_CHARS  # noqa: E402
from nbhelpers.run import load_profile, notebook_paths, run_series  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def stand_in_data(shared, folder, copies):
    """Lay out `folder` as a WikiText-103 data folder from WikiText-2's two files; returns the
    number of training paragraphs (lines over `WIKITEXT_MIN_CHARS` characters).

    Args:
        shared: a data folder holding sst2/, vocab/ and wikitext-2/wiki.{valid,test}.tokens.
        folder: the folder to write (wikitext-103/wiki.{train,valid}.raw; the rest linked).
        copies: how many times the valid and test paragraphs are repeated as the train split.
    """
    folder = Path(folder)
    (folder / "wikitext-103").mkdir(parents=True)
    for name in ("sst2", "vocab"):
        (folder / name).symlink_to(Path(shared) / name)
    source = Path(shared) / "wikitext-2"
    paragraphs = [line for name in ("wiki.valid.tokens", "wiki.test.tokens")
                  for line in (source / name).read_text(encoding="utf-8").splitlines()
                  if len(line.strip()) > WIKITEXT_MIN_CHARS]
    text = "\n".join(paragraphs) + "\n"
    with open(folder / "wikitext-103" / "wiki.train.raw", "w", encoding="utf-8") as f:
        for _ in range(copies):
            f.write(text)
    (folder / "wikitext-103" / "wiki.valid.raw").symlink_to(source / "wiki.valid.tokens")
    return len(paragraphs) * copies, sum(len(p.split()) for p in paragraphs) * copies


def tree_rss(process):
    """The resident memory of `process`'s children (the kernel and its helpers), in bytes."""
    total = 0
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def peak_rss_while(work, interval=0.05):
    """Run `work()` while polling this process's children; returns the peak RSS seen (bytes)."""
    me, peak, done = psutil.Process(), [0], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(me))
            time.sleep(interval)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        work()
    finally:
        done.set()
        poller.join()
    return peak[0]


def measure(copies):
    """Notebook 02's kernel peak RSS and wall time with the train split repeated `copies` times."""
    profile = load_profile("full")
    with tempfile.TemporaryDirectory() as scratch:
        data_dir, artifacts = Path(scratch) / "data", Path(scratch) / "artifacts"
        paragraphs, words = stand_in_data(SHARED_DATA, data_dir, copies)
        # Notebook 02 reads only the data folder and precision from 01's artifact: write them
        # instead of running the baseline.
        (artifacts / "01_baseline").mkdir(parents=True)
        write_json(artifacts / "01_baseline" / "config.json",
                   {"data_dir": str(data_dir), "precision": profile["PRECISION"], "seed": profile.get("SEED", 42),
                    "baseline_max_tokens": profile["BASELINE_MAX_TOKENS"]})
        started = time.perf_counter()
        peak = peak_rss_while(lambda: run_series(notebook_paths(only=["02"]), {**profile, "DATA_DIR": str(data_dir)},
                                                 artifacts))
        seconds = time.perf_counter() - started
        tokens_bytes = (artifacts / "02_mlm_data" / "train_tokens.npy").stat().st_size
    return {"copies": copies, "train_paragraphs": paragraphs, "train_words": words,
            "train_tokens_npy_bytes": tokens_bytes, "peak_rss_bytes": peak, "wall_seconds": round(seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 10], help="sizes: repeats of the paragraphs")
    parser.add_argument("--out", default=None, help="write the record here as JSON")
    args = parser.parse_args()
    runs = []
    for copies in args.copies:
        runs.append(measure(copies))
        print(json.dumps(runs[-1]), flush=True)
    small, large = runs[0], runs[-1]
    per_paragraph = (large["peak_rss_bytes"] - small["peak_rss_bytes"]) / (large["train_paragraphs"] - small["train_paragraphs"])
    record = {"machine": describe_machine(), "load_average": psutil.getloadavg(), "runs": runs,
              "peak_rss_bytes_per_extra_paragraph": per_paragraph}
    print(json.dumps({"peak_rss_bytes_per_extra_paragraph": per_paragraph}))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
