"""The speed benchmark runs end to end (a smoke test: its timings are read by people, not asserted)."""

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "speed.py"


def test_the_benchmark_runs_and_reports_both_sides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the synthetic data is generated under ./artifacts
    spec = importlib.util.spec_from_file_location("speed", BENCH)
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    out = tmp_path / "speed.json"
    speed.main(["--warmup-steps", "1", "--pretrain-steps", "1", "--finetune-examples", "128",
                "--finetune-epochs", "1", "--out", str(out)])
    results = json.loads(out.read_text())
    pretraining, finetuning = results["pretraining"], results["finetuning"]
    # Packing leaves (almost) no padding; the guide's truncate-and-pad leaves plenty.
    assert pretraining["ours"]["useful_share"] > 0.99 > pretraining["guide"]["useful_share"]
    assert pretraining["useful_tokens_per_second_ratio"] > 0
    for side in ("guide", "ours"):
        assert len(finetuning[side]["dev_accuracy"]) == 1 and 0 <= finetuning[side]["dev_accuracy"][0] <= 1
