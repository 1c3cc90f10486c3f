"""Keep long runs across machines: snapshot run folders into the repository, and bring them back.

A session's machine is new each time, so ``runs/`` (ignored by git) does not survive it. A seed run
that outlasts one session keeps its resumable state -- the results stores, the finished models and
the per-epoch training checkpoints -- in ``runs-kept/NAME/``, committed as it goes; the next
session's ``scripts/seed-runs.sh`` copies it back into ``runs/NAME/`` and the run resumes there.

    python scripts/keep-runs.py snapshot NAME...            copy runs/NAME into runs-kept/NAME
    python scripts/keep-runs.py snapshot --commit NAME...   ... and commit runs-kept/ alone
    python scripts/keep-runs.py watch --every 900 NAME...   snapshot and commit until killed
    python scripts/keep-runs.py restore NAME...             copy runs-kept/NAME back when runs/NAME is missing

SQLite stores are copied through SQLite's backup API, so a store being written is copied whole and
consistent; every other file is written atomically by the toolkit and is copied as it is. The HTML
report is left out (it is rebuilt from the store). Files over --max-mb (default 16) are left as
they are in runs-kept/ (neither copied nor removed): every commit of a file stays in the
repository's history, and a wide model's per-epoch checkpoint (tens of MB, rewritten each epoch)
would add its size each round. Take them at a session's end, once, with --max-mb 0 (no limit).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from saddlepoint.fileio import atomic_path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs"
KEPT = ROOT / "runs-kept"
_MISSING: set[str] = set()
# the report (rebuilt from the store), SQLite's side files (the backup reads through them) and
# the toolkit's own half-written temporaries (atomic_path's ".part")
SKIPPED_SUFFIXES = (".html", "-journal", "-wal", "-shm", ".part", ".lock")
MAX_MB = 16.0
_LARGE: set[Path] = set()


def _kept_files(folder: Path) -> dict[Path, Path]:
    """Every file of a run folder worth keeping, by its path relative to the folder."""
    files = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.endswith(SKIPPED_SUFFIXES):
            files[path.relative_to(folder)] = path
    return files


def _copy_sqlite(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("pragma journal_mode=delete")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()


def snapshot(name: str, runs: Path = RUNS, kept: Path = KEPT, max_mb: float = MAX_MB) -> bool:
    """Copy runs/NAME into runs-kept/NAME, leaving files over ``max_mb`` (0: no limit) as they
    are there; True when anything changed."""
    source, target = runs / name, kept / name
    if not source.is_dir():
        if name not in _MISSING:  # said once: the queue has not reached it yet
            print(f"keep-runs: no run folder {source} yet; skipped", file=sys.stderr)
            _MISSING.add(name)
        return False
    changed = False
    files = _kept_files(source)
    large = {rel for rel, path in files.items() if max_mb and path.stat().st_size > max_mb * 2**20}
    for rel in large:
        if source / rel not in _LARGE:  # said once per file
            print(f"keep-runs: {source / rel} is over {max_mb:g} MB; left out", file=sys.stderr)
            _LARGE.add(source / rel)
    for rel, path in files.items():
        if rel in large:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            copy = path
            if path.suffix == ".sqlite":  # a consistent copy first, then compare as any file
                copy = Path(scratch) / path.name
                _copy_sqlite(path, copy)
            dest = target / rel
            if dest.is_file() and filecmp.cmp(copy, dest, shallow=False):
                continue
            with atomic_path(dest) as temporary:
                shutil.copyfile(copy, temporary)
            changed = True
    for path in list(target.rglob("*")) if target.is_dir() else []:
        if path.is_file() and path.relative_to(target) not in files:
            path.unlink()  # gone from the run (a training checkpoint once its model is final)
            changed = True
    return changed


def commit(names: list[str]) -> None:
    """Commit runs-kept/NAME for the given runs, and nothing else that may be staged."""
    paths = [str((KEPT / name).relative_to(ROOT)) for name in names if (KEPT / name).exists()]
    if not paths:
        return
    subprocess.run(["git", "add", "-A", "--", *paths], cwd=ROOT, check=True)
    staged = subprocess.run(
        ["git", "diff", "--cached", "--quiet", "--", *paths], cwd=ROOT, check=False
    )
    if staged.returncode == 0:
        return
    message = f"runs-kept: snapshot of {', '.join(names)} ({time.strftime('%Y-%m-%d %H:%M')})"
    subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=ROOT, check=True)


def restore(name: str, runs: Path = RUNS, kept: Path = KEPT) -> None:
    """Copy runs-kept/NAME into runs/NAME when the run folder is missing.

    The copy is made in a hidden folder beside runs/NAME and renamed into place whole: a watcher
    snapshotting at the same moment must never see a half-restored folder, or it would mirror it
    into runs-kept/ and delete every file not yet copied back (this happened once)."""
    source, target = kept / name, runs / name
    if target.exists() or not source.is_dir():
        return
    runs.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.restoring-", dir=runs))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(f"keep-runs: restored {target} from {source}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["snapshot", "watch", "restore"])
    parser.add_argument("names", nargs="+", metavar="NAME", help="run folder names under runs/")
    parser.add_argument("--commit", action="store_true", help="commit runs-kept/NAME after")
    parser.add_argument(
        "--every", type=float, default=900.0, help="watch: seconds between snapshots"
    )
    parser.add_argument(
        "--max-mb",
        type=float,
        default=MAX_MB,
        help=f"leave files over this size as they are in runs-kept/ (default {MAX_MB:g}; 0: no "
        "limit, for one snapshot of a large checkpoint at a session's end)",
    )
    args = parser.parse_args(argv)
    if args.max_mb < 0:
        parser.error(f"argument --max-mb: {args.max_mb:g} is negative; give 0 (no limit) or more")
    if args.action == "restore":
        for name in args.names:
            restore(name)
        return 0
    while True:
        changed = [name for name in args.names if snapshot(name, max_mb=args.max_mb)]
        if changed and (args.commit or args.action == "watch"):
            try:
                commit(changed)
            except subprocess.CalledProcessError as error:  # a busy index: next round
                print(f"keep-runs: commit failed ({error}); retried next round", file=sys.stderr)
        if args.action == "snapshot":
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
