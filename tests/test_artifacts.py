import pytest

from nbhelpers.artifacts import (
    ArtifactError,
    publish_artifact,
    read_json,
    require_artifact,
    stage_artifact,
    write_json,
)


def test_an_artifact_appears_only_when_published(tmp_path):
    staging = stage_artifact(tmp_path, "03_encoder")
    write_json(staging / "config.json", {"a": 1})
    with pytest.raises(ArtifactError, match=r"03_encoder is missing\. Run notebooks/03_pretrain_encoder.ipynb first"):
        require_artifact(tmp_path, "03_encoder")
    folder = publish_artifact(staging)
    assert folder == tmp_path / "03_encoder" and not staging.exists()
    assert read_json(require_artifact(tmp_path, "03_encoder") / "config.json") == {"a": 1}


def test_publishing_replaces_the_old_artifact_whole(tmp_path):
    for version in (1, 2):
        staging = stage_artifact(tmp_path, "01_baseline")
        write_json(staging / "config.json", {"version": version})
        if version == 1:
            (staging / "old_only.txt").write_text("x")
        publish_artifact(staging)
    assert read_json(tmp_path / "01_baseline" / "config.json") == {"version": 2}
    assert not (tmp_path / "01_baseline" / "old_only.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_baseline"]


def test_incomplete_artifacts_are_refused(tmp_path):
    staging = stage_artifact(tmp_path, "02_mlm_data")
    with pytest.raises(ArtifactError, match="no config.json"):
        publish_artifact(staging)
    (tmp_path / "02_mlm_data").mkdir()
    write_json(tmp_path / "02_mlm_data" / "config.json", {})
    with pytest.raises(ArtifactError, match=r"incomplete \(no vocab.txt\).*02_mlm_preprocessing.ipynb"):
        require_artifact(tmp_path, "02_mlm_data", files=("config.json", "vocab.txt"))


def test_an_interrupted_stage_is_cleaned_up_by_the_next_run(tmp_path):
    leftover = stage_artifact(tmp_path, "04_classifier")
    (leftover / "half_written.keras").write_text("")
    stage_artifact(tmp_path, "04_classifier")
    assert not leftover.exists()
    with pytest.raises(ValueError, match="Unknown artifact"):
        stage_artifact(tmp_path, "99_nothing")
