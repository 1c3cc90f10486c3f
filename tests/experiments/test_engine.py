import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from saddlepoint.attacks import PGD
from saddlepoint.checkpoint import load_checkpoint
from saddlepoint.cli.main import main
from saddlepoint.data import load_dataset
from saddlepoint.experiments import ResultsStore, load_spec, run_experiment
from saddlepoint.experiments.engine import UNIT_ROWS, plan
from saddlepoint.experiments.spec import SpecError, parse_spec
from saddlepoint.experiments.store import config_key


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / "digits.safetensors"
    assert main(["--quiet", "train", "--epochs", "5", "--out", str(path)]) == 0
    return path


def write_spec(folder, checkpoint, **grid):
    spec = {
        "name": "small",
        "checkpoints": [str(checkpoint)],
        "dataset": {"split": "test", "limit": 120},
        "attack": "pgd",
        "grid": grid
        or {
            "eps": ["5..10 /100"],
            "steps": [1, 2, 4],
            "loss": ["ce", "mse"],
            "random_start": [True, False],
        },
        "fixed": {"seed": 3} if "step" in grid else {"step": "2/100", "seed": 3},
    }
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def model_data_and_rows(checkpoint, store_path):
    """The checkpoint's model, the 120 test images a spec from ``write_spec`` attacks, and the
    rows the run stored: what each test compares with separately run attacks."""
    model, meta = load_checkpoint(checkpoint)
    data = load_dataset("digits", **meta["dataset"]["options"])
    with ResultsStore(store_path) as store:
        rows = store.rows()
    return model, data.test.images[:120], data.test.labels[:120], rows


def test_ranges_fractions_and_configurations(tmp_path, checkpoint):
    spec = load_spec(write_spec(tmp_path, checkpoint))
    assert spec.grid["eps"] == pytest.approx([0.05, 0.06, 0.07, 0.08, 0.09, 0.10])
    assert spec.fixed["step"] == pytest.approx(0.02)
    assert parse_spec({"checkpoints": ["c"], "attack": "pgd", "grid": {"steps": ["1..3"]}}).grid[
        "steps"
    ] == [1, 2, 3]
    configs = spec.configurations()
    assert len(configs) == 6 * 3 * 2 * 2
    # steps, eps, starts and losses stack; a unit holds as few settings (eps, start, loss) as
    # fill UNIT_ROWS rows for the images, each with all its step counts, so rows land as it goes
    units = plan(configs, "pgd", images=120)
    per_unit = -(-UNIT_ROWS // 120)
    assert [len(u) for u in units] == [3 * per_unit, 3 * (24 - per_unit)]
    assert sorted(config_key(c) for u in units for c in u) == sorted(map(config_key, configs))
    for unit in units:
        settings = {(c["eps"], c["loss"], c["random_start"]) for c in unit}
        assert len(unit) == 3 * len(settings)  # every step count of a setting in one unit
    assert len(plan(configs, "pgd")) == 24  # a whole split: one setting per unit


def test_shared_step_counts_equal_separate_attacks(tmp_path, checkpoint):
    spec = load_spec(write_spec(tmp_path, checkpoint, eps=[0.1], steps=[1, 3, 6], loss=["mse"]))
    counts = run_experiment(spec, tmp_path / "r.sqlite", progress=False)
    assert counts == {"total": 3, "skipped": 0, "run": 3, "stale": 0}
    model, x, y, stored = model_data_and_rows(checkpoint, tmp_path / "r.sqlite")
    rows = {r["param_steps"]: r for r in stored}
    for steps in (1, 3, 6):
        alone = PGD(eps=0.1, steps=steps, step=0.02, loss="mse", seed=3)(model, x, y)
        assert rows[steps]["accuracy"] == pytest.approx(
            alone.metrics()["robust_accuracy"], abs=1e-9
        )
        assert rows[steps]["loss"] == pytest.approx(alone.metrics()["loss"], rel=1e-6)
    again = run_experiment(spec, tmp_path / "r.sqlite", progress=False)
    assert again == {"total": 3, "skipped": 3, "run": 0, "stale": 0}


def test_stacked_eps_steps_starts_and_losses_equal_separate_attacks(tmp_path, checkpoint):
    grid = {
        "eps": [0.05, 0.1],
        "steps": [1, 3],
        "random_start": [True, False],
        "step": [0.02, 0.03],
        "loss": ["ce", "mse", "dlr"],
    }
    spec = load_spec(write_spec(tmp_path, checkpoint, **grid))
    assert len(plan(spec.configurations(), "pgd", images=120)) == 2  # 24 settings, 18 a unit
    run_experiment(spec, tmp_path / "r.sqlite", progress=False)
    model, x, y, rows = model_data_and_rows(checkpoint, tmp_path / "r.sqlite")
    assert len(rows) == 48
    for row in rows:
        attack = PGD(
            eps=row["param_eps"],
            steps=row["param_steps"],
            step=row["param_step"],
            random_start=bool(row["param_random_start"]),
            loss=row["param_loss"],
            seed=3,
        )
        result = attack(model, x, y)
        alone = result.metrics()
        assert row["accuracy"] == pytest.approx(alone["robust_accuracy"], abs=1e-9)
        assert row["loss"] == pytest.approx(alone["loss"], rel=1e-5)
        objective = float(attack.loss_fn(result.logits, result.labels).mean())
        assert row["objective"] == pytest.approx(objective, rel=1e-5, abs=1e-7)


def test_killed_sweep_resumes_to_the_same_rows(tmp_path, checkpoint):
    path = write_spec(tmp_path, checkpoint)
    reference = tmp_path / "ref"
    assert main(["--quiet", "sweep", "run", str(path), "--out", str(reference)]) == 0
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "saddlepoint.cli.main",
        "--quiet",
        "sweep",
        "run",
        str(path),
        "--out",
        str(out),
    ]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    database = out / "results.sqlite"
    deadline = time.time() + 120
    count = 0
    while time.time() < deadline and process.poll() is None:
        if database.exists():
            try:
                count = (
                    sqlite3.connect(database).execute("SELECT COUNT(*) FROM results").fetchone()[0]
                )
            except sqlite3.OperationalError:
                count = 0
            if count >= 6:
                break
        time.sleep(0.05)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()
    partial = len(ResultsStore(database).done())
    assert main(["--quiet", "sweep", "run", str(path), "--out", str(out)]) == 0

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    with ResultsStore(reference / "results.sqlite") as a, ResultsStore(database) as b:
        assert strip(a.rows()) == strip(b.rows())
        assert len(a.rows()) == 72
    assert 0 < partial < 72  # killed part-way, with whole rows only


@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_executors_give_the_same_rows(tmp_path, checkpoint, executor):
    if executor == "ray":
        pytest.importorskip("ray", reason="Ray is in the dev extras (make setup)")
    spec = load_spec(
        write_spec(tmp_path, checkpoint, eps=[0.05, 0.1], steps=[1, 2], loss=["ce", "mse"])
    )
    run_experiment(spec, tmp_path / "local.sqlite", progress=False)
    counts = run_experiment(
        spec, tmp_path / "other.sqlite", executor=executor, workers=2, progress=False
    )
    assert counts["run"] == 8

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    with ResultsStore(tmp_path / "local.sqlite") as a, ResultsStore(tmp_path / "other.sqlite") as b:
        assert strip(a.rows()) == strip(b.rows())


def test_top_and_export(tmp_path, checkpoint, capsys):
    path = write_spec(tmp_path, checkpoint, eps=[0.05, 0.1], steps=[2, 4])
    assert main(["--quiet", "sweep", "run", str(path), "--out", str(tmp_path)]) == 0
    assert main(["--quiet", "sweep", "status", str(path), "--out", str(tmp_path)]) == 0
    assert main(["--quiet", "sweep", "top", str(path), "--out", str(tmp_path), "--k", "2"]) == 0
    assert (
        main(
            [
                "--quiet",
                "sweep",
                "export",
                str(path),
                "--out",
                str(tmp_path),
                "--to",
                str(tmp_path / "r.csv"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "4 / 4 configurations done" in out and "objective" in out
    assert (tmp_path / "r.csv").read_text().count("\n") == 5
    parquet = tmp_path / "r.parquet"
    argv = ["--quiet", "sweep", "export", str(path), "--out", str(tmp_path), "--to", str(parquet)]
    try:
        import pandas
        import pyarrow  # noqa: F401
    except ImportError:  # without the extra: a one-line error that names it
        assert main(argv) == 2
        assert "pip install 'saddlepoint[parquet]'" in capsys.readouterr().err
    else:
        assert main(argv) == 0
        assert len(pandas.read_parquet(parquet)) == 4


@pytest.mark.parametrize(
    "change, message",
    [
        ({"atack": "pgd"}, "Did you mean 'attack'"),
        ({"attack": "pdg"}, "Did you mean 'pgd'"),
        ({"grid": {"stpes": [1]}}, r"grid\.stpes.*Did you mean 'steps'"),
        ({"grid": {"eps": ["9..1 /255"]}}, r"grid\.eps.*empty"),
        ({"grid": {"eps": ["eight"]}}, r"grid\.eps"),
        ({"grid": {"steps": [0]}}, "'steps' parameter of PGD"),
        ({"checkpoints": []}, "checkpoints"),
        ({"dataset": {"limt": 8}}, r"dataset\.limt.*Did you mean 'limit'"),
        ({"dataset": {"limit": -3}}, r"dataset\.limit.*at least 1"),
        ({"dataset": {"limit": 0}}, r"dataset\.limit.*at least 1"),
        ({"dataset": {"split": "tset"}}, r"dataset\.split"),
        # a bad value in the middle of the grid fails before any row is committed
        ({"grid": {"eps": [0.1, -0.2, 0.3], "steps": [1, 2]}}, "'eps' parameter"),
    ],
)
def test_invalid_files_name_the_field(change, message):
    base = {"checkpoints": ["x.safetensors"], "attack": "pgd", "grid": {"eps": [0.1]}}
    if "atack" in change:
        base.pop("attack")
    with pytest.raises(SpecError, match=message):
        parse_spec({**base, **change})


def test_relative_checkpoints_resolve_next_to_the_file_only(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    (tmp_path / "files").mkdir()
    (tmp_path / "here" / "m.safetensors").write_text("a decoy in the current folder")
    monkeypatch.chdir(tmp_path / "here")
    spec = parse_spec(
        {"checkpoints": ["m.safetensors"], "attack": "pgd", "grid": {"eps": [0.1]}},
        tmp_path / "files",
    )
    assert spec.checkpoint_path("m.safetensors") == tmp_path / "files" / "m.safetensors"
    assert spec.checkpoint_path(str(tmp_path / "x.safetensors")) == tmp_path / "x.safetensors"


def test_status_top_and_export_show_the_current_experiment_only(tmp_path, checkpoint, capsys):
    path = write_spec(tmp_path, checkpoint, eps=[0.05, 0.1], steps=[2, 4])
    out = ["--out", str(tmp_path)]
    assert main(["--quiet", "sweep", "run", str(path), *out]) == 0
    write_spec(tmp_path, checkpoint, eps=[0.05, 0.05], steps=[2])  # shrunk, with a duplicate
    capsys.readouterr()
    assert main(["--quiet", "sweep", "status", str(path), *out]) == 0
    status = capsys.readouterr().out
    assert "1 / 1 configurations done" in status and "3 more rows" in status
    export = ["--quiet", "sweep", "export", str(path), *out, "--to", str(tmp_path / "r.csv")]
    assert main(export) == 0
    assert (tmp_path / "r.csv").read_text().count("\n") == 2  # header and the one row
    assert main([*export, "--all"]) == 0
    assert (tmp_path / "r.csv").read_text().count("\n") == 5
    assert main(["--quiet", "sweep", "run", str(path), *out]) == 0
    assert "0 run, 1 already done, 1 in all" in capsys.readouterr().out


def test_rows_from_another_checkpoint_or_data_selection_are_stale_and_rerun(
    tmp_path, checkpoint, capsys
):
    """The same configurations over a retrained checkpoint at the same path, or another
    dataset.limit, are re-run and replace the old rows; status and top say so meanwhile."""
    import shutil

    model = tmp_path / "model.safetensors"
    shutil.copy(checkpoint, model)
    path = write_spec(tmp_path, model, eps=[0.05, 0.1], steps=[1])
    out = ["--out", str(tmp_path / "store")]
    assert main(["--quiet", "sweep", "run", str(path), *out]) == 0
    capsys.readouterr()
    assert main(["--quiet", "sweep", "run", str(path), *out]) == 0
    assert "0 run, 2 already done" in capsys.readouterr().out

    argv = ["--quiet", "train", "--epochs", "1", "--seed", "7", "--out", str(model)]
    assert main(argv) == 0  # another model at the same path
    capsys.readouterr()
    assert main(["--quiet", "sweep", "status", str(path), *out]) == 0
    assert "0 / 2 configurations done" in (status := capsys.readouterr().out)
    assert "2 stored rows are stale" in status
    assert main(["--quiet", "sweep", "top", str(path), *out]) == 0
    assert "0.05" not in capsys.readouterr().out  # no stale row is shown as a result
    assert main(["--quiet", "sweep", "run", str(path), *out]) == 0
    assert "2 run (2 of them replace rows" in capsys.readouterr().out
    with ResultsStore(tmp_path / "store" / "results.sqlite") as store:
        rows = store.rows()
    model_now, meta = load_checkpoint(model)
    data = load_dataset("digits", **meta["dataset"]["options"])
    alone = PGD(eps=0.1, steps=1, step=0.02, seed=3)(
        model_now, data.test.images[:120], data.test.labels[:120]
    )
    row = next(r for r in rows if r["param_eps"] == 0.1)
    assert row["accuracy"] == pytest.approx(alone.metrics()["robust_accuracy"], abs=1e-9)

    spec = yaml.safe_load(path.read_text())
    spec["dataset"]["limit"] = 60
    path.write_text(yaml.safe_dump(spec))
    assert main(["--quiet", "sweep", "run", str(path), *out]) == 0
    assert "2 run (2 of them replace rows" in capsys.readouterr().out
    with ResultsStore(tmp_path / "store" / "results.sqlite") as store:
        assert {r["n"] for r in store.rows()} == {60}


def test_a_sweep_on_the_users_own_files_matches_the_same_images_by_name(tmp_path, checkpoint):
    import numpy as np

    test = load_dataset("digits").test
    np.savez(
        tmp_path / "mine.npz", images=test.images[:60].numpy(), labels=test.labels[:60].numpy()
    )
    grid = {"eps": [0.05, 0.1]}
    spec = {"name": "own", "checkpoints": [str(checkpoint)], "attack": "fgsm", "grid": grid}
    (tmp_path / "own.yaml").write_text(yaml.safe_dump({**spec, "dataset": {"path": "mine.npz"}}))
    named = {**spec, "name": "named", "dataset": {"split": "test", "limit": 60}}
    (tmp_path / "named.yaml").write_text(yaml.safe_dump(named))
    rows = {}
    for name in ("own", "named"):
        run_experiment(load_spec(tmp_path / f"{name}.yaml"), tmp_path / f"{name}.sqlite")
        with ResultsStore(tmp_path / f"{name}.sqlite") as store:
            rows[name] = sorted((r["param_eps"], r["accuracy"]) for r in store.rows())
    assert rows["own"] == rows["named"]  # the path is resolved next to the file, not here
    # Editing the files makes their rows stale: the next run computes them again.
    np.savez(
        tmp_path / "mine.npz", images=test.images[:30].numpy(), labels=test.labels[:30].numpy()
    )
    os.utime(tmp_path / "mine.npz", ns=(1, 1))
    summary = run_experiment(load_spec(tmp_path / "own.yaml"), tmp_path / "own.sqlite")
    assert summary["run"] == 2 and summary["stale"] == 2
    with pytest.raises(SpecError, match="name .* or path .*, not both"):
        parse_spec({**spec, "dataset": {"path": "x", "name": "digits"}})


def test_a_low_precision_grid_records_what_separate_low_precision_attacks_report(
    tmp_path, checkpoint
):
    grid = {"eps": [0.1], "steps": [2, 4], "loss": ["ce", "mse"], "step": [0.03]}
    path = write_spec(tmp_path, checkpoint, **grid)
    spec = yaml.safe_load(path.read_text())
    spec["fixed"]["precision"] = "bf16"
    path.write_text(yaml.safe_dump(spec))
    run_experiment(load_spec(path), tmp_path / "r.sqlite", progress=False)
    model, x, y, rows = model_data_and_rows(checkpoint, tmp_path / "r.sqlite")
    assert len(rows) == 4
    for row in rows:
        kwargs = {k: row[f"param_{k}"] for k in ("eps", "steps", "loss", "step")}
        alone = PGD(**kwargs, precision="bf16", seed=3)(model, x, y)
        assert alone.precision == "bf16"
        # outcomes are decided on float32 logits at each recorded iterate, as a run alone does
        assert row["accuracy"] == pytest.approx(alone.metrics()["robust_accuracy"], abs=1e-9)
        assert row["loss"] == pytest.approx(alone.metrics()["loss"], rel=1e-4)
