"""scripts/seed-runs.sh: what --background would start, and bad run names refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.scripts import SCRIPTS

SCRIPT = SCRIPTS / "seed-runs.sh"


def _bash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_background_dry_run_starts_one_queue_per_list_and_watches_them_all() -> None:
    done = _bash("--background", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    queues = [line.split(": ", 1)[1].split() for line in lines if line.startswith("queue ")]
    watcher = [line.split(": ", 1)[1].split() for line in lines if line.startswith("watcher")]
    assert len(watcher) == 1
    assert watcher[0] == [name for queue in queues for name in queue]
    assert len(set(watcher[0])) == len(watcher[0]), "a run in two queues: two processes, one folder"


def test_an_unknown_run_name_is_refused_with_the_names_allowed() -> None:
    done = _bash("no-such-run")
    assert done.returncode == 2
    assert "'no-such-run'" in done.stderr and "seed003-mnist" in done.stderr


def test_a_run_in_two_queues_is_refused_before_any_queue_starts(tmp_path: Path) -> None:
    lines = SCRIPT.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith(("QUEUE_A=", "QUEUE_C=")):
            lines[index] = line[: len("QUEUE_A=")] + "(seed003-mnist)"
    copy = tmp_path / "scripts" / "seed-runs.sh"
    copy.parent.mkdir()
    copy.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        ["bash", str(copy), "--background"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "'seed003-mnist' is in two queues" in done.stderr
    assert not (tmp_path / "runs").exists(), "nothing may start before the queues are checked"
