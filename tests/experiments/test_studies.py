"""Each seed study at a tiny size on digits: it runs, records its tables and figures, and its
numbers have the properties the study is about."""

import math
from pathlib import Path

import pytest
import torch
import yaml

from saddlepoint.cli.main import main
from saddlepoint.experiments.studies import StudyError, load_study, run_study
from saddlepoint.fileio import content_digest
from saddlepoint.runlog import RunLog, Section
from tests.interrupt import Killed, stop_before


def study(tmp_path, name, **params):
    folder = tmp_path / name
    spec = {"study": name, "dataset": {"name": "digits"}, "seed": 0, "params": params}
    run_study(spec, folder, progress=False)
    with RunLog(folder) as log:
        sections = {s.key: s for s in log.sections()}
    for section in sections.values():
        assert section.text and (section.tables or section.figures)
        for path, _ in section.figures:
            assert (folder / path).stat().st_size > 1000
    return sections


def test_attack_grid(tmp_path):
    sections = study(
        tmp_path,
        "attack-grid",
        model="cnn",
        epochs=6,
        images=60,
        eps=[0.05, 0.1],
        eta=[0.02],
        steps=[1, 3],
        losses=["ce"],
    )
    grid = sections["grid"].table("grid").records()
    assert len(grid) == 2 * 2 * 1 * 2 * 1 * 2  # norms, eps, eta, n, losses, starts
    for r in grid:
        scale = math.sqrt(64) if r["norm"] == "l2" else 1.0  # eps_2 = sqrt(p) eps_inf
        assert r["eps"] == pytest.approx(r["eps_inf"] * scale)
        assert r["omega"] in ("omega_0", "omega_rand")
    top = sections["grid"].table("top-linf").records()
    at = [r for r in grid if r["norm"] == "linf" and r["eps_inf"] == 0.1]  # the default radius
    assert top[0]["accuracy"] == min(r["accuracy"] for r in at)
    assert {r["eps_inf"] for r in top} == {0.1}  # one radius, not pooled
    assert len(sections["rescaling"].figures) == 2


def test_convergence(tmp_path):
    summary = (
        study(
            tmp_path,
            "convergence",
            models=["mlp", "cnn"],
            epochs=4,
            images=60,
            eps=0.1,
            step=0.01,
            steps=30,
            tol=1e-3,
        )["convergence"]
        .table("summary")
        .records()
    )
    for row in summary:
        assert 1 <= row["mean steps to converge"] <= row["max steps"] <= 30
        assert row["final acc"] <= row["clean acc"]


def test_transfer(tmp_path):
    sections = study(
        tmp_path,
        "transfer",
        target="cnn",
        depths=[1, 2],
        depth_width=8,
        widths=[8, 16],
        width_depth=1,
        epochs=4,
        images=80,
        eps=0.15,
        pgd_steps=5,
    )
    assert len(sections["models"].table("models").rows) == 1 + 3  # d1-w8 is shared
    rows = sections["transfer"].table("transfer").records()
    white = sections["transfer"].table("whitebox").records()
    pgd_white = next(r["target acc"] for r in white if r["attack"].startswith("PGD"))
    assert all(r["target acc"] >= pgd_white for r in rows)  # white-box is the strongest
    assert all(r["surrogate acc"] <= r["target acc"] for r in rows if r["attack"] != "FGSM")
    assert sections["gradcam"].figures
    assert "PGD fools (test images " in sections["gradcam"].text


def test_overfitting(tmp_path):
    sections = study(
        tmp_path,
        "overfitting",
        widths=["cnn"],
        overtrain_epochs=6,
        epochs=3,
        patience=1,
        dropout=0.3,
        images=60,
        eps=0.1,
        steps=5,
    )
    models = sections["overfitting"].table("models").records()
    assert [m["model"] for m in models] == [
        "cnn over-trained",
        "cnn early-stopped",
        "cnn dropout 0.3",
    ]
    assert models[0]["epochs"] == 6 and models[1]["epochs"] <= 3


def test_defenses_show_naive_and_honest(tmp_path):
    rows = (
        study(
            tmp_path,
            "defenses",
            model="cnn",
            epochs=6,
            eps=0.15,
            noise=0.2,
            images=50,
            audit_images=25,
            strong_steps=15,
            strong_queries=300,
        )["defenses"]
        .table("defenses")
        .records()
    )
    by = {r["model"].split(" (")[0]: r for r in rows}
    quantized = by["quantized"]
    assert quantized["naive PGD-40"] > quantized["BPDA PGD-40"] + 0.2  # masking exposed
    assert by["reference"]["naive PGD-40"] == by["reference"]["BPDA PGD-40"]
    assert by["adversarial training"]["BPDA PGD-40"] > by["reference"]["naive PGD-40"]
    robust = next(c for c in rows[0] if c.startswith("robust accuracy"))
    for row in rows:  # the quoted number is never above the PGD one beside it
        assert row[robust] <= row["BPDA PGD-40"] + 1e-9


def test_minimal_perturbations(tmp_path):
    sections = study(
        tmp_path,
        "minimal-perturbations",
        models=["mlp"],
        epochs=4,
        images=60,
        fgsm_eps=[0.05, 0.1, 0.2, 0.4],
        finetune_epochs=2,
        curve_images=60,
    )["minimal"]
    row = sections.table("minimal").records()[0]
    assert 0 < row["rho_adv DeepFool"] < row["rho_adv fast gradient sign"]
    # the paper's averaging counts the images nothing moved (misclassified already) as zero
    assert 0 < row["rho_adv DeepFool (all images)"] <= row["rho_adv DeepFool"] * (1 + 1e-6)
    tuned = sections.table("finetuned").records()
    assert [r["fine-tuned on"] for r in tuned] == ["deepfool", "fgsm"]
    # the curve over the fine-tuning epochs (the DeepFool paper's Fig. 5): it starts at the
    # model before fine-tuning and ends at the fine-tuned model, measured on the same images
    curve = sections.table("finetune-curve").records()
    for attack, after in zip(("deepfool", "fgsm"), tuned):
        points = [r for r in curve if r["fine-tuned on"] == attack]
        assert [r["epoch"] for r in points] == [0, 1, 2]
        assert points[0]["rho_adv DeepFool"] == pytest.approx(row["rho_adv DeepFool"], rel=1e-5)
        assert points[-1]["rho_adv DeepFool"] == pytest.approx(
            after["rho_adv DeepFool after"], rel=1e-5
        )
    assert any(path.endswith("finetune-curve.png") for path, _ in sections.figures)


def test_blackbox(tmp_path):
    sections = study(
        tmp_path,
        "blackbox",
        model="cnn",
        epochs=6,
        images=60,
        eps=[0.1, 0.2],
        step=0.05,
        queries=50,
        heatmaps=3,
    )
    rows = sections["search"].table("search").records()
    assert all(r["mean queries"] <= 50 for r in rows)
    square = [r["accuracy"] for r in rows if r["method"] == "Square"]
    assert square[1] <= square[0]  # a larger ball never helps the model
    assert sections["pixels"].figures


def test_generative(tmp_path):
    small = dict(modes=["consecutive"], classifier="cnn", classifier_epochs=3, attacker_epochs=1)
    section = study(tmp_path, "generative", t=[0.05, 0.3], width=8, **small)["generative"]
    final = section.table("final").records()
    assert [r["t"] for r in final] == [0.05, 0.3]
    assert final[1]["c1_attacked_accuracy"] < final[1]["c1_clean_accuracy"]
    figures = {Path(path).name for path, _ in section.figures}
    # seed Fig 4: the attacked loss of the targeted C1 and of the untargeted C2, each its own plot
    assert {"generative-consecutive-c1-loss.png", "generative-consecutive-c2-loss.png"} <= figures

    noclip = tmp_path / "noclip"
    unclipped = study(noclip, "generative", t=[0.3], width=8, clip=False, **small)["generative"]
    assert "not clipped" in unclipped.text and "not clipped" not in section.text


def test_study_files_and_errors(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "study": "blackbox",
                "params": {
                    "queries": 30,
                    "images": 20,
                    "eps": [0.1],
                    "model": "cnn",
                    "epochs": 2,
                    "heatmaps": 2,
                },
            }
        )
    )
    assert load_study(path)["dataset"] == {"name": "digits"}
    assert main(["--quiet", "study", "run", str(path), "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "report.html").is_file()
    assert main(["--quiet", "study", "list"]) == 0
    assert "generative" in capsys.readouterr().out
    for bad, message in (
        ({"study": "blackbox", "parms": {}}, "Unknown field 'parms'.*'params'"),
        ({"study": "blackbx"}, "'blackbx' is not a study.*'blackbox'"),
        ({"study": "blackbox", "params": {"querys": 3}}, "params.querys.*'queries'"),
        ({"study": "attack-grid", "params": {"eps": []}}, "params.eps' is an empty list"),
        ({"study": "blackbox", "params": {"images": "abc"}}, "params.images' must be a whole"),
        ({"study": "blackbox", "seed": "abc"}, "'seed' must be a whole number"),
        ({"study": "blackbox", "train_limit": -4}, "'train_limit' must be a whole number"),
    ):
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(StudyError, match=message):
            load_study(path)


def test_redo_builds_a_recorded_section_again_and_names_an_unknown_one(tmp_path, capsys):
    path, out = tmp_path / "s.yaml", str(tmp_path / "run")
    params = {"queries": 20, "images": 10, "eps": [0.1], "model": "mlp", "epochs": 1}
    path.write_text(yaml.safe_dump({"study": "blackbox", "params": {**params, "heatmaps": 0}}))
    # nothing recorded yet: named before any training, and the folder is left as it was
    assert main(["--quiet", "study", "run", str(path), "--out", out, "--redo", "nosuch"]) != 0
    error = capsys.readouterr().err
    assert "'nosuch' is not recorded" in error and "no section yet" in error
    assert not (tmp_path / "run").exists()
    assert main(["--quiet", "study", "run", str(path), "--out", out]) == 0
    with RunLog(tmp_path / "run") as log:
        keys = [section.key for section in log.sections()]
    capsys.readouterr()
    assert main(["study", "run", str(path), "--out", out]) == 0
    assert capsys.readouterr().err.count("already done, skipped") == len(keys)  # logged
    assert main(["study", "run", str(path), "--out", out, "--redo", keys[0]]) == 0
    said = capsys.readouterr().err
    assert f"built again on request (--redo {keys[0]})" in said
    assert said.count("already done, skipped") == len(keys) - 1
    assert main(["--quiet", "study", "run", str(path), "--out", out, "--redo", "nosuch"]) != 0
    error = capsys.readouterr().err
    assert "--redo" in error and "'nosuch' is not recorded" in error and keys[0] in error
    with RunLog(tmp_path / "run") as log:  # a section an older version of the study recorded
        log.add(Section("retired", "Retired"))
    assert main(["--quiet", "study", "run", str(path), "--out", out, "--redo", "retired"]) != 0
    assert "'retired' is no section of study 'blackbox'" in capsys.readouterr().err
    spec = {"study": "blackbox", "params": {**params, "heatmaps": -1}}
    with pytest.raises(ValueError, match="'heatmaps' parameter of blackbox.*Got -1"):
        run_study(spec, tmp_path / "bad", progress=False)


def test_every_shipped_study_file_is_valid():
    from pathlib import Path

    files = sorted(Path(__file__).resolve().parents[2].glob("experiments/study*.yaml"))
    assert len(files) >= 8
    studies = {load_study(f)["study"] for f in files}
    assert studies == {
        "attack-grid",
        "convergence",
        "transfer",
        "overfitting",
        "defenses",
        "minimal-perturbations",
        "blackbox",
        "generative",
    }


def test_demo_defense_table_calls_the_strongest_number_robust_accuracy(trained_digits):
    from saddlepoint.cli.demo import audit_line
    from saddlepoint.evaluate.robustness import STRONGEST_LABEL
    from saddlepoint.experiments.studies.demo import defense_table
    from saddlepoint.runlog import Section, Table
    from tests.attacks.models import OscillatingTemperature

    model, data = trained_digits
    trap = OscillatingTemperature(model, features=64)  # cross-entropy PGD overstates it
    meta = {"metrics": {"test": {"accuracy": 0.98}}}
    x, y = data.test.images[:50], data.test.labels[:50]
    models = [("reference", model, meta), ("masked", trap, meta)]
    table = defense_table(models, x, y, 0.1, strong_steps=30)
    pgd_column, robust_column = table.columns[2], table.columns[3]
    assert pgd_column.startswith("PGD-40x2") and robust_column.startswith("robust accuracy")
    assert STRONGEST_LABEL in robust_column
    for row in table.records():
        assert row[robust_column] <= row[pgd_column] + 1e-9
    masked = table.records()[1]
    assert masked[robust_column] <= masked[pgd_column] - 0.15
    summary = Section("audit", "audit")
    summary.tables.append(
        Table(
            "audit-summary",
            ["robust accuracy", "reached by", "checks passed", "failed"],
            [[0.246, "APGD-CE + APGD-DLR", "6/7", "a stronger attack finds no more (...)"]],
        )
    )
    line = audit_line(summary)
    assert "robust accuracy 0.2460 (APGD-CE + APGD-DLR)" in line and "6/7 checks pass" in line
    assert "failed: a stronger attack finds no more" in line


def test_pgd_stops_when_the_mean_loss_settles():
    """Seed 000 §4.3.2: stop at the first iterate whose mean loss moved by less than alpha."""
    from saddlepoint.experiments.studies.training import converged

    trace = [{"iteration": i, "loss": v} for i, v in enumerate([1.0, 1.5, 1.8, 1.805, 1.9])]
    assert [t["iteration"] for t in converged(trace, 0.01)] == [0, 1, 2, 3]
    assert converged(trace, None) == trace
    assert converged(trace, 1e-9) == trace  # never settles: the whole (capped) run


def test_overfitting_gives_every_model_one_schedule(tmp_path):
    sections = study(
        tmp_path,
        "overfitting",
        widths=["cnn"],
        overtrain_epochs=3,
        early_epochs=[1],
        dropout_epochs=[2],
        schedule="constant",
        lr=1e-3,
        images=30,
        eps=0.1,
        steps=30,
        pgd_step=0.02,
        alpha=0.01,
    )
    models = sections["overfitting"].table("models").records()
    assert [m["epochs"] for m in models] == [3, 1, 2]
    for row in sections["overfitting"].table("robust").records():
        assert row["PGD iterations"] <= 30
    from saddlepoint.checkpoint import read_metadata

    for key in ("cnn-over-trained", "cnn-early-stopped", "cnn-dropout-0.3"):
        recipe = read_metadata(tmp_path / "overfitting" / "models" / f"{key}.safetensors")["train"]
        assert recipe["schedule"] == "constant" and recipe["lr"] == 1e-3


def test_a_rerun_recomputes_sections_whose_seed_data_or_model_changed(tmp_path):
    """A section is skipped only when it was recorded from the same parameters, seed, dataset
    options and model bytes; otherwise it is recomputed, so the report never describes a model
    that is no longer in the folder."""
    params = {"queries": 20, "images": 12, "eps": [0.1], "model": "cnn", "epochs": 1}
    params |= {"heatmaps": 1}
    folder = tmp_path / "run"

    def run(seed=0, **dataset_options):
        spec = {
            "study": "blackbox",
            "dataset": {"name": "digits", "options": dataset_options},
            "seed": seed,
            "params": params,
        }
        run_study(spec, folder, progress=False)
        with RunLog(folder) as log:
            return {s.key: (s.seconds, s.params) for s in log.sections()}

    first = run()
    assert run() == first  # unchanged inputs: every section skipped, kept as it was
    reseeded = run(seed=1)
    for key, (_, stored) in reseeded.items():
        made = stored["_made_from"]
        assert made["inputs"]["seed"] == 1 and stored["_key"] != first[key][1]["_key"]
        before = first[key][1]["_made_from"]["arguments"]["target"]
        assert made["arguments"]["target"] != before  # the model was retrained
    resplit = run(seed=1, val_fraction=0.2)
    for _, stored in resplit.values():
        assert stored["_made_from"]["inputs"]["options"]["val_fraction"] == 0.2
    model = next((folder / "models").glob("*.safetensors"))
    data = bytearray(model.read_bytes())
    data[-1] ^= 1  # another model at the same path (its recipe is unchanged)
    model.write_bytes(bytes(data))
    touched = run(seed=1, val_fraction=0.2)
    assert model.read_bytes() != bytes(data)  # not the model its recipe made: trained again
    for _, stored in touched.values():  # every section describes the model in the folder
        assert stored["_made_from"]["arguments"]["target"]["sha256"] == content_digest(model)


def test_a_study_model_stopped_mid_training_resumes_at_its_last_epoch(digits, tmp_path):
    from saddlepoint.defenses import NoiseTraining
    from saddlepoint.experiments.studies.base import StudyContext

    def model_of(folder, defense):
        with RunLog(folder) as log:
            ctx = StudyContext(log=log, data=digits, device="cpu", progress=False)
            return ctx.train("net", "mlp", epochs=4, defense=defense, batch_size=128).load()[0]

    whole = model_of(tmp_path / "whole", NoiseTraining(scale=0.2))
    with pytest.raises(Killed):
        model_of(tmp_path / "stopped", stop_before(NoiseTraining(scale=0.2), 3))
    assert (tmp_path / "stopped" / "models" / "net.training.pt").is_file()
    resumed = model_of(tmp_path / "stopped", NoiseTraining(scale=0.2))
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert not (tmp_path / "stopped" / "models" / "net.training.pt").exists()


def test_generative_study_resumes_at_the_next_intensity(tmp_path, monkeypatch):
    """A generative study stopped during its second (mode, t) run keeps the first: the re-run
    trains only the runs it lacks, reuses the classifiers, and records what a whole run does."""
    import importlib

    module = importlib.import_module("saddlepoint.experiments.studies.generative")

    params = dict(
        t=[0.05, 0.3],
        modes=["alternating"],
        classifier="cnn",
        clean_epochs=2,
        attacker_epochs=1,
        width=4,
    )
    whole = study(tmp_path / "whole", "generative", **params)["generative"]

    real, trained = module.train_generative_attack, []

    def stops_at_the_second(data, config, **options):
        trained.append(config.t)
        if trained == [0.05, 0.3]:
            raise Killed
        return real(data, config, **options)

    monkeypatch.setattr(module, "train_generative_attack", stops_at_the_second)
    with pytest.raises(Killed):
        study(tmp_path / "stopped", "generative", **params)
    models = tmp_path / "stopped" / "generative" / "models"
    assert (models / "attacker-alternating-t0.05.pt").is_file()
    assert {p.name for p in models.glob("c*-alternating.safetensors")} == {
        "c1-alternating.safetensors",
        "c2-alternating.safetensors",
    }
    trained.clear()
    resumed = study(tmp_path / "stopped", "generative", **params)["generative"]
    assert trained == [0.3]
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(resumed.table("history").records()) == drop(whole.table("history").records())
    # The attackers' weights (tens of MB at the seed's width, never kept in git) are not needed
    # to resume: each run's rows and figure images are its task's result.
    (models / "attacker-alternating-t0.05.pt").unlink()
    trained.clear()
    study(tmp_path / "stopped", "generative", **params, compare_t=[0.05])  # the section reruns
    assert trained == []
    runs = tmp_path / "stopped" / "generative" / "cache" / "attacker_run"
    assert len(list(runs.glob("*.json"))) == 2
    for result in runs.glob("*.json"):  # damaged results are made again, not errors
        result.write_text(result.read_text()[:-10])
    trained[:] = ["again"]  # (no longer the sequence that stops the run)
    again = study(tmp_path / "stopped", "generative", **params)["generative"]
    assert trained == ["again", 0.05, 0.3]
    assert drop(again.table("history").records()) == drop(whole.table("history").records())


def test_defenses_study_stopped_mid_section_keeps_the_finished_models_rows(tmp_path, monkeypatch):
    """Each model's evaluation is kept as it finishes: a run killed in the third model's audit
    re-evaluates only the last three models, and its table equals an uninterrupted run's."""
    import importlib

    module = importlib.import_module("saddlepoint.experiments.studies.training")
    params = dict(
        model="mlp",
        epochs=1,
        eps=0.1,
        noise=0.2,
        images=20,
        audit_images=10,
        strong_steps=5,
        strong_queries=40,
        audit_steps=5,
        audit_queries=40,
        attack_steps=5,
    )
    whole = study(tmp_path / "whole", "defenses", **params)["defenses"].table("defenses")
    real, audited, dying = module.audit, [], [True]

    def dies_in_the_third(*args, **options):
        audited.append(1)
        if dying[0] and len(audited) == 3:
            raise Killed
        return real(*args, **options)

    monkeypatch.setattr(module, "audit", dies_in_the_third)
    with pytest.raises(Killed):
        study(tmp_path / "stopped", "defenses", **params)
    rows = tmp_path / "stopped" / "defenses" / "cache" / "defense_record"
    assert len(list(rows.glob("*.json"))) == 2
    audited.clear()
    dying[0] = False
    resumed = study(tmp_path / "stopped", "defenses", **params)["defenses"].table("defenses")
    assert len(audited) == 3  # the first two models' rows were kept
    plain = lambda rows: [[None if v != v else v for v in row] for row in rows]  # noqa: E731
    assert plain(resumed.rows) == plain(whole.rows)


def test_transfer_surrogate_too_deep_for_the_images_fails_first(tmp_path):
    # Digits are 8x8: three 2x2 'valid' blocks with pooling leave nothing. The study says so
    # before training anything, naming the parameter that mends it; padding mends it.
    params = dict(target="cnn", depths=[1, 3], depth_width=4, widths=[4], width_depth=1)
    params.update(epochs=1, images=10, eps=0.1, pgd_steps=2)
    with pytest.raises(ValueError, match="surrogate_pad_to") as error:
        study(tmp_path / "bare", "transfer", **params)
    assert "depth 3" in str(error.value) and "8x8" in str(error.value)
    assert not list((tmp_path / "bare").rglob("*.safetensors"))
    sections = study(tmp_path / "padded", "transfer", surrogate_pad_to=16, **params)
    rows = sections["transfer"].table("transfer").records()
    assert sorted({r["value"] for r in rows if r["family"] == "depth"}) == [1, 3]


def test_transfer_study_stopped_mid_section_keeps_the_finished_surrogates_rows(
    tmp_path, monkeypatch
):
    """Each surrogate's transfer rows are a task: a run killed in the last surrogate's attacks
    recomputes only the surrogates it lacks (not the models section's training, not the first
    surrogate, not the second, which is the first's model), and its table equals an
    uninterrupted run's."""
    import importlib

    module = importlib.import_module("saddlepoint.experiments.studies.transfer")
    params = dict(target="cnn", depths=[1], depth_width=4, widths=[4, 8], width_depth=1)
    params.update(epochs=1, images=20, eps=0.1, pgd_steps=2)
    whole = study(tmp_path / "whole", "transfer", **params)["transfer"]
    real, attacked, dying = module.transfer_attack, [], [True]

    def dies_in_the_third(*args, **options):
        attacked.append(1)
        if dying[0] and len(attacked) == 3:  # FGSM on width 8 (width 4 is depth 1's model)
            raise Killed
        return real(*args, **options)

    monkeypatch.setattr(module, "transfer_attack", dies_in_the_third)
    with pytest.raises(Killed):
        study(tmp_path / "stopped", "transfer", **params)
    cache = tmp_path / "stopped" / "transfer" / "cache"
    assert len(list((cache / "transfer_records").glob("*.json"))) == 1
    attacked.clear()
    dying[0] = False
    resumed = study(tmp_path / "stopped", "transfer", **params)["transfer"]
    assert len(attacked) == 2  # FGSM and PGD on width 8 only
    assert len(list((cache / "transfer_records").glob("*.json"))) == 2
    assert len(list((cache / "whitebox_records").glob("*.json"))) == 1
    for name in ("transfer", "whitebox"):  # losses to float rounding: the sub-batch size an
        # attack picks by timing changes the order of a sum
        for got, want in zip(resumed.table(name).rows, whole.table(name).rows, strict=True):
            assert got[:3] == want[:3] and got[3:] == pytest.approx(want[3:], rel=1e-5)


def test_adversarial_training_study_stopped_mid_section_keeps_the_finished_rows(
    tmp_path, monkeypatch
):
    """Each (network, split) row of seed 002's Table 3 is kept as it finishes: a run killed in
    the second network's strongest evaluation recomputes only the rows it lacks, and its table
    equals an uninterrupted run's."""
    import importlib

    module = importlib.import_module("saddlepoint.experiments.studies.robust_nets")
    params = dict(
        model="mlp", epochs=1, at_epochs=1, train_images=30, test_images=30, strong_images=10
    )
    whole = study(tmp_path / "whole", "adversarial-training", **params)["table3"].table("table3")
    real, evaluated, dying = module.strongest_attack, [], [True]

    def counted(*args, **options):
        attack = real(*args, **options)

        def run(*inputs):
            evaluated.append(1)
            if dying[0] and len(evaluated) == 2:
                raise Killed
            return attack(*inputs)

        return run

    monkeypatch.setattr(module, "strongest_attack", counted)
    with pytest.raises(Killed):
        study(tmp_path / "stopped", "adversarial-training", **params)
    rows = tmp_path / "stopped" / "adversarial-training" / "cache" / "table3_record"
    assert len(list(rows.glob("*.json"))) == 3  # the original's rows and FGSM-AT's train row
    evaluated.clear()
    dying[0] = False
    resumed = study(tmp_path / "stopped", "adversarial-training", **params)["table3"]
    assert len(evaluated) == 2  # FGSM-AT's and PGD-AT's test rows; the original's was kept
    plain = lambda rows: [[None if v != v else v for v in row] for row in rows]  # noqa: E731
    assert plain(resumed.table("table3").rows) == plain(whole.rows)
