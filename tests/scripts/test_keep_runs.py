"""scripts/keep-runs.py: a run folder survives a new machine through runs-kept/."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.scripts import load_script


def _module():
    return load_script("keep-runs.py")


def _rows(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("select value from results order by value").fetchall()
    finally:
        connection.close()


def test_snapshot_and_restore_round_trip(tmp_path: Path) -> None:
    keep = _module()
    runs, kept = tmp_path / "runs", tmp_path / "runs-kept"
    run = runs / "study"
    (run / "models").mkdir(parents=True)
    store = sqlite3.connect(run / "run.sqlite")
    store.execute("pragma journal_mode=wal")  # as the toolkit's stores are
    store.execute("create table results (value integer)")
    store.executemany("insert into results values (?)", [(1,), (2,)])
    store.commit()  # still open: committed rows sit in the WAL file, not yet in run.sqlite
    (run / "models" / "a.training.pt").write_bytes(b"epoch 3")
    (run / "report.html").write_text("rebuilt from the store")
    (run / ".report.html.x1y2.part").write_text("half written")  # an atomic write under way

    assert keep.snapshot("study", runs, kept)
    assert not keep.snapshot("study", runs, kept)  # nothing changed: nothing to commit
    assert _rows(kept / "study" / "run.sqlite") == [(1,), (2,)]
    assert not (kept / "study" / "report.html").exists()
    assert sorted(p.name for p in (kept / "study").iterdir()) == ["models", "run.sqlite"]

    store.execute("insert into results values (3)")
    store.commit()
    store.close()
    (run / "models" / "a.training.pt").unlink()  # the model finished
    (run / "models" / "a.safetensors").write_bytes(b"weights")
    assert keep.snapshot("study", runs, kept)
    assert sorted(p.name for p in (kept / "study" / "models").iterdir()) == ["a.safetensors"]

    new_runs = tmp_path / "new-machine"
    keep.restore("study", new_runs, kept)
    assert _rows(new_runs / "study" / "run.sqlite") == [(1,), (2,), (3,)]
    assert (new_runs / "study" / "models" / "a.safetensors").read_bytes() == b"weights"
    (new_runs / "study" / "models" / "a.safetensors").write_bytes(b"newer")
    keep.restore("study", new_runs, kept)  # an existing run folder is never overwritten
    assert (new_runs / "study" / "models" / "a.safetensors").read_bytes() == b"newer"


def test_large_files_are_left_as_they_are_unless_asked(tmp_path: Path) -> None:
    # Every committed version stays in git's history: a wide model's checkpoint, rewritten each
    # epoch, is kept only when asked (--max-mb 0), and never removed by a capped round.
    keep = _module()
    runs, kept = tmp_path / "runs", tmp_path / "runs-kept"
    models = runs / "study" / "models"
    models.mkdir(parents=True)
    (models / "wide.training.pt").write_bytes(b"e" * 3000)
    (models / "small.safetensors").write_bytes(b"w" * 100)
    limit = 2000 / 2**20  # MB

    assert keep.snapshot("study", runs, kept, max_mb=limit)
    assert sorted(p.name for p in (kept / "study" / "models").iterdir()) == ["small.safetensors"]
    assert keep.snapshot("study", runs, kept, max_mb=0)  # the session's last snapshot
    assert (kept / "study" / "models" / "wide.training.pt").read_bytes() == b"e" * 3000
    (models / "wide.training.pt").write_bytes(b"f" * 3000)  # the next epoch
    assert not keep.snapshot("study", runs, kept, max_mb=limit)  # left as it is, not removed
    assert (kept / "study" / "models" / "wide.training.pt").read_bytes() == b"e" * 3000
    (models / "wide.training.pt").unlink()  # the model finished: its checkpoint goes
    assert keep.snapshot("study", runs, kept, max_mb=limit)
    assert not (kept / "study" / "models" / "wide.training.pt").exists()


def test_restore_is_never_seen_half_done(tmp_path: Path, monkeypatch) -> None:
    # A watcher's snapshot during a restore once mirrored a half-copied run folder into
    # runs-kept/ and deleted the models not yet copied back. The restore is now copied beside
    # runs/NAME and renamed into place, so a snapshot taken mid-copy finds no run folder at all.
    keep = _module()
    runs, kept = tmp_path / "runs", tmp_path / "runs-kept"
    models = kept / "study" / "models"
    models.mkdir(parents=True)
    for index in range(5):
        (models / f"m{index}.safetensors").write_bytes(bytes([index]) * 10)
    real_copy = keep.shutil.copy2
    seen = []

    def copy_then_snapshot(source, target, **kwargs):
        result = real_copy(source, target, **kwargs)
        seen.append(keep.snapshot("study", runs, kept))  # the watcher, racing the restore
        return result

    real_copytree = keep.shutil.copytree

    def copytree(source, target, *args, **kwargs):
        if args:  # shutil's own recursion into a sub-folder passes its arguments on
            return real_copytree(source, target, *args, **kwargs)
        return real_copytree(source, target, copy_function=copy_then_snapshot, **kwargs)

    monkeypatch.setattr(keep.shutil, "copytree", copytree)
    keep.restore("study", runs, kept)
    assert seen == [False] * 5  # no run folder to mirror while copying
    assert sorted(p.name for p in models.iterdir()) == [f"m{i}.safetensors" for i in range(5)]
    restored = runs / "study" / "models"
    assert sorted(p.name for p in restored.iterdir()) == [f"m{i}.safetensors" for i in range(5)]
    assert [p.name for p in runs.iterdir()] == ["study"]  # no staging folder left behind
