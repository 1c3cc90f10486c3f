"""No command writes one of its outputs over another output or over an input, and output paths
are checked before any work starts (issue: nothing lost on bad input)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from saddlepoint.cli.main import main

TRAIN = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1"]


def run(capsys, *argv):
    code = main(["--quiet", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    assert main(["--quiet", *TRAIN, "--out", str(path)]) == 0
    return path


def test_train_refuses_a_json_out_that_its_twin_would_overwrite(capsys, tmp_path):
    start = time.perf_counter()
    code, out, err = run(capsys, *TRAIN, "--epochs", "30", "--out", str(tmp_path / "m.json"))
    assert code == 2 and "--out" in err and ".safetensors" in err
    assert "Traceback" not in err and not any(tmp_path.iterdir())
    assert time.perf_counter() - start < 5  # refused before 30 epochs of training


@pytest.mark.parametrize("case", ["folder", "parent-is-a-file"])
def test_train_checks_out_before_training(capsys, tmp_path, case):
    if case == "folder":
        out_path = tmp_path / "existing"
        out_path.mkdir()
        phrase = "is a folder"
    else:
        (tmp_path / "file").write_text("x")
        out_path = tmp_path / "file" / "m.safetensors"
        phrase = "is a file"
    start = time.perf_counter()
    code, _, err = run(capsys, *TRAIN, "--epochs", "30", "--out", str(out_path))
    assert code == 2 and "--out" in err and phrase in err and "Traceback" not in err
    assert time.perf_counter() - start < 5


def test_evaluate_json_may_not_overwrite_the_checkpoint_or_its_twin(capsys, checkpoint):
    before = checkpoint.read_bytes(), checkpoint.with_suffix(".json").read_bytes()
    for target in (checkpoint, checkpoint.with_suffix(".json")):
        code, _, err = run(capsys, "evaluate", str(checkpoint), "--json", str(target))
        assert code == 2 and "--json" in err and "would overwrite" in err
    assert (checkpoint.read_bytes(), checkpoint.with_suffix(".json").read_bytes()) == before


def test_audit_and_attack_outputs_may_not_overwrite_the_checkpoint(capsys, checkpoint):
    before = checkpoint.read_bytes()
    code, _, err = run(capsys, "audit", str(checkpoint), "--json", str(checkpoint))
    assert code == 2 and "would overwrite the input CHECKPOINT" in err
    code, _, err = run(
        capsys, "attack", str(checkpoint), "--attack", "fgsm", "--save", str(checkpoint.parent)
    )
    assert code == 0, err  # a folder beside the checkpoint is fine
    assert checkpoint.read_bytes() == before


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    from saddlepoint.experiments.engine import _die_with_parent

    if __name__ == "__main__":
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(2, mp_context=context, initializer=_die_with_parent,
                                   initargs=(os.getpid(),))
        futures = [pool.submit(os.getpid) for _ in range(8)]
        print(" ".join(sorted({str(f.result()) for f in futures})), flush=True)
        time.sleep(120)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_sweep_workers_die_with_their_parent_even_after_kill_9(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert workers
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in workers if _alive(pid)]
            time.sleep(0.1)
        assert not alive, f"workers {alive} outlived their parent"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited; it only waits for its reaper
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except OSError:
        return False
