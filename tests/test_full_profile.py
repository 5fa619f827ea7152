"""The full profile's code path on real data, capped to a CPU-sized run.

`--profile full` is a GPU job on WikiText-103 that no CI machine can run at its size. This test
runs its settings (the BERT vocabulary file, 128-token unpacked WikiText paragraphs, the guide's
3 x 128 encoder, AdamW at 5e-4, random embedding start) through notebooks 01-04 on the real
WikiText-2, SST-2 and BERT vocabulary files, with only the sizes capped, so that what would
break a user's GPU run breaks here first: a file name the loaders do not find in the layout
`nbhelpers.acquire` writes, a parameter the profile gets wrong, a memory blow-up in tokenizing.
"""

import importlib.util
import math
from pathlib import Path

import pytest

from nbhelpers.acquire import DATASETS
from nbhelpers.artifacts import read_json
from nbhelpers.data import WIKITEXT_MIN_CHARS
from nbhelpers.run import load_profile, notebook_paths, run_series

BENCH = Path(__file__).resolve().parents[1] / "bench"

# Only the sizes change: a few hundred paragraphs, labels and steps.
CAPS = {
    "MAX_TRAIN_PARAGRAPHS": 320,  # 5 steps of the profile's 64 sequences
    "PRETRAIN_EPOCHS": 1,
    "BASELINE_EPOCHS": 1,
    "LABEL_BUDGET": 320,
    "FINETUNE_EPOCHS": 1,
    "CURVE_BUDGETS": "",
}
VALID_PARAGRAPHS = 256
# Notebook 02's kernel peaked at about 1.0 GB here with these caps (docs/results/full-profile.md);
# a copy of the corpus per vocabulary entry, or a dense one-hot array, would pass 3 GB at once.
PEAK_RSS_LIMIT = 3 * 1024**3


def _peak_rss_while():
    spec = importlib.util.spec_from_file_location("notebook02_memory", BENCH / "notebook02_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.peak_rss_while


def wikitext103_layout(shared, folder):
    """A data folder with WikiText-103's file names (as `nbhelpers.acquire` writes them) over the
    real files present: SST-2 and the BERT vocabulary linked, and, standing in for WikiText-103
    (not kept here), WikiText-2's test split linked as `wiki.train.raw` and `wiki.test.raw` (the
    larger of the two present: 1,830 paragraphs) and the first `VALID_PARAGRAPHS` paragraphs of
    its validation split written as `wiki.valid.raw` (every validation pass runs over all of it;
    no parameter caps it). Both are the tokenized `.tokens` files (rare words written `<unk>`),
    the same articles and markup as the raw files."""
    for name in ("sst2", "vocab"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(shared / name)
    wikitext2 = shared / "wikitext-2"
    for file in DATASETS["wikitext-103"].files:  # e.g. "wikitext-103/wiki.train.raw"
        path = folder / file
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name == "wiki.valid.raw":
            lines = (wikitext2 / "wiki.valid.tokens").read_text(encoding="utf-8").splitlines()
            paragraphs = [line for line in lines if len(line.strip()) > WIKITEXT_MIN_CHARS]
            path.write_text("\n".join(paragraphs[:VALID_PARAGRAPHS]) + "\n", encoding="utf-8")
        else:
            path.symlink_to(wikitext2 / "wiki.test.tokens")
    return folder


def test_the_full_profile_runs_capped_on_real_wikitext_sst2_and_the_bert_vocabulary(shared_data, tmp_path):
    if not all((shared_data / "wikitext-2" / name).is_file() for name in ("wiki.valid.tokens", "wiki.test.tokens")):
        pytest.skip(f"WikiText-2's valid and test files are not present in {shared_data / 'wikitext-2'}")
    data_dir = wikitext103_layout(shared_data, tmp_path / "data")
    artifacts = tmp_path / "artifacts"
    profile = load_profile("full")
    values = {**profile, "DATA_DIR": str(data_dir), **CAPS}

    run_series(notebook_paths(only=["01"]), values, artifacts)
    peak = _peak_rss_while()(lambda: run_series(notebook_paths(only=["02"]), values, artifacts))
    run_series(notebook_paths(only=["03", "04"]), values, artifacts)

    corpus = read_json(artifacts / "02_mlm_data" / "config.json")
    assert Path(corpus["vocabulary"]).name == "bert_vocab_uncased.txt" and corpus["vocabulary_size"] == 30522
    assert corpus["sequence_length"] == 128 and corpus["packed"] is False and corpus["predictions_per_sequence"] == 25
    assert corpus["train_sequences"] == CAPS["MAX_TRAIN_PARAGRAPHS"] and corpus["valid_sequences"] == VALID_PARAGRAPHS
    assert peak < PEAK_RSS_LIMIT, f"notebook 02 peaked at {peak / 1024**3:.2f} GB on {CAPS['MAX_TRAIN_PARAGRAPHS']} paragraphs"

    encoder = read_json(artifacts / "03_encoder" / "config.json")
    pretrained = read_json(artifacts / "03_encoder" / "metrics.json")
    assert {k: encoder[k] for k in ("num_layers", "model_dim", "num_heads", "intermediate_dim", "embedding_start")} == {
        "num_layers": 3, "model_dim": 128, "num_heads": 2, "intermediate_dim": 512, "embedding_start": "random"}
    assert 4.4e6 < pretrained["encoder_parameters"] < 4.7e6  # the guide's 4.5M encoder
    assert pretrained["optimizer_steps"] == CAPS["MAX_TRAIN_PARAGRAPHS"] // profile["PRETRAIN_BATCH_SIZE"]
    assert math.isfinite(pretrained["history"]["loss"][0]) and 0 <= pretrained["val_mlm_accuracy"] <= 1

    classifier = read_json(artifacts / "04_classifier" / "metrics.json")
    assert read_json(artifacts / "04_classifier" / "config.json")["train_labels"] == CAPS["LABEL_BUDGET"]
    assert 0 <= classifier["dev_accuracy"] <= 1 and 0 <= classifier["from_scratch_dev_accuracy"] <= 1
    assert classifier["baseline_dev_accuracy"] > 0.7  # one epoch of the bag of words on all of SST-2
