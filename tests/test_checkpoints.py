"""Checkpoint directories are swapped in whole: a kill at any moment leaves one complete copy
(training/checkpoints.py)."""

from omnicoach.training.checkpoints import has_checkpoint, replace_directory, staging_for


def _write(directory, step: int):
    staging = staging_for(directory)
    (staging / "progress.json").write_text(f'{{"step": {step}}}')
    return staging


def test_a_new_version_replaces_the_old_and_nothing_is_left_beside_it(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    replace_directory(checkpoint, _write(checkpoint, 1))
    replace_directory(checkpoint, _write(checkpoint, 2))
    assert (checkpoint / "progress.json").read_text() == '{"step": 2}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_kill_between_the_two_renames_leaves_the_old_copy_to_resume(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    replace_directory(checkpoint, _write(checkpoint, 1))
    # What a kill right after replace_directory moved the old version aside leaves: the old
    # copy under .old, the new one half-written in .tmp, no checkpoint.
    _write(checkpoint, 2)
    checkpoint.rename(tmp_path / "checkpoint.old")
    assert has_checkpoint(checkpoint)  # put back
    assert (checkpoint / "progress.json").read_text() == '{"step": 1}'
    replace_directory(checkpoint, _write(checkpoint, 3))  # the next save goes on as usual
    assert (checkpoint / "progress.json").read_text() == '{"step": 3}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_no_checkpoint_at_all_is_said_so(tmp_path):
    assert not has_checkpoint(tmp_path / "checkpoint")
    assert not (tmp_path / "checkpoint").exists()
