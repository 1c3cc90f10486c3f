"""scripts/seed-runs.sh: what --background would start, and bad run names refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.scripts import SCRIPTS

SCRIPT = SCRIPTS / "seed-runs.sh"


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _with_queues(tmp_path: Path, **queues: str) -> Path:
    """A copy of the script whose QUEUE_A/B/C hold ``queues`` (by letter; the rest empty)."""
    lines = SCRIPT.read_text().splitlines()
    for index, line in enumerate(lines):
        for letter in "ABC":
            if line.startswith(f"QUEUE_{letter}="):
                lines[index] = f"QUEUE_{letter}=({queues.get(letter.lower(), '')})"
    copy = tmp_path / "scripts" / "seed-runs.sh"
    copy.parent.mkdir()
    copy.write_text("\n".join(lines) + "\n")
    return copy


def test_background_dry_run_starts_one_queue_per_list_and_watches_them_all(tmp_path: Path) -> None:
    script = _with_queues(tmp_path, a="seed003-mnist seed002-s2-mnist", c="seed004-mnist")
    done = _run(script, "--background", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    queues = [line.split(": ", 1)[1].split() for line in lines if line.startswith("queue ")]
    watcher = [line.split(": ", 1)[1].split() for line in lines if line.startswith("watcher")]
    assert queues == [["seed003-mnist", "seed002-s2-mnist"], ["seed004-mnist"]]
    assert watcher == [["seed003-mnist", "seed002-s2-mnist", "seed004-mnist"]]


def test_the_scripts_own_queues_pass_the_checks() -> None:
    done = _run(SCRIPT, "--background", "--dry-run")
    assert done.returncode == 0, done.stderr


def test_empty_queues_say_so_and_start_nothing(tmp_path: Path) -> None:
    done = _run(_with_queues(tmp_path), "--background")
    assert done.returncode == 0
    assert "every queue is empty" in done.stderr and "nothing to start" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_an_unknown_run_name_is_refused_with_the_names_allowed() -> None:
    done = _run(SCRIPT, "no-such-run")
    assert done.returncode == 2
    assert "'no-such-run'" in done.stderr and "seed003-mnist" in done.stderr


def test_a_run_in_two_queues_is_refused_before_any_queue_starts(tmp_path: Path) -> None:
    script = _with_queues(tmp_path, a="seed003-mnist", c="seed003-mnist")
    done = _run(script, "--background")
    assert done.returncode == 2
    assert "'seed003-mnist' is in two queues" in done.stderr
    assert not (tmp_path / "runs").exists(), "nothing may start before the queues are checked"
