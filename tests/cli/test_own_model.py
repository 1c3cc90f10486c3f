"""Your own model from the command line: --model/--weights in every command, and `import`."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from saddlepoint.attacks import PGD
from saddlepoint.cli.main import main
from saddlepoint.data import load_dataset
from saddlepoint.models.external import InputAdapter

FACTORY = """
from torch import nn

def make(hidden=32):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
"""
# The user's model was trained on 0..255 pixels standardized by mean 128, std 64.
ADAPTER = ["--bounds", "0,255", "--input-normalization", "mean=128,std=64"]


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    (folder / "usernet.py").write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)  # the same code the CLI will import from the file
    torch.manual_seed(0)
    model = namespace["make"](hidden=24)
    train = load_dataset("digits").split("train")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(model((train.images * 255 - 128) / 64), train.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), folder / "weights.pt")
    model_args = ["--model", f"{folder / 'usernet.py'}:make", "--model-arg", "hidden=24"]
    return folder, [*model_args, "--weights", str(folder / "weights.pt")]


def run(capsys, *argv):
    code = main(["--quiet", *[str(a) for a in argv]])
    out = capsys.readouterr()
    return code, out.out, out.err


def _accuracy(out: str) -> float:
    return float(out.splitlines()[2].split()[4])


def test_evaluate_attack_and_audit_take_a_users_model(capsys, own):
    folder, model = own
    code, out, err = run(capsys, "evaluate", *model, *ADAPTER, "--dataset", "digits")
    assert code == 0, err
    assert _accuracy(out) > 0.9
    code, out, _ = run(capsys, "evaluate", *model, "--dataset", "digits")
    assert code == 0 and _accuracy(out) < 0.9  # without the adapter it sees the wrong pixels
    code, out, err = run(
        capsys,
        "attack",
        *model,
        *ADAPTER,
        "--dataset",
        "digits",
        "--attack",
        "pgd",
        "--eps",
        "0.2",
        "--limit",
        "60",
        "--save",
        folder / "attack",
    )
    assert code == 0, err
    record = json.loads((folder / "attack" / "metrics.json").read_text())
    assert record["model"].endswith("usernet.py:make") and record["checkpoint"] is None
    assert record["metrics"]["robust_accuracy"] < record["metrics"]["clean_accuracy"]
    # The same model through the Python API gives the same robust accuracy.
    namespace: dict = {}
    exec(FACTORY, namespace)
    net = namespace["make"](hidden=24)
    net.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
    api_model = InputAdapter(net, bounds=(0, 255), mean=[128.0], std=[64.0]).eval()
    test = load_dataset("digits").test
    api = PGD(eps=0.2, early_stop=True)(api_model, test.images[:60], test.labels[:60])
    assert api.metrics()["robust_accuracy"] == record["metrics"]["robust_accuracy"]
    code, out, err = run(
        capsys,
        "audit",
        *model,
        *ADAPTER,
        "--dataset",
        "digits",
        "--limit",
        "30",
        "--eps",
        "0.1",
        "--steps",
        "5",
        "--queries",
        "50",
        "--json",
        folder / "audit.json",
    )
    assert code == 0, err
    assert "robust accuracy" in out and (folder / "audit.json").is_file()


def test_import_makes_a_checkpoint_every_command_takes(capsys, own, tmp_path):
    folder, model = own
    out_path = tmp_path / "mine.safetensors"
    code, out, err = run(
        capsys, "import", *model, *ADAPTER, "--dataset", "digits", "--out", out_path
    )
    assert code == 0, err
    imported = float(out.splitlines()[2].split()[-1])
    assert imported > 0.9
    meta = json.loads(out_path.with_suffix(".json").read_text())
    assert meta["model"]["name"] == "external" and meta["model"]["kwargs"] == {"hidden": 24}
    assert len(meta["imported"]["weights_sha256"]) == 64
    trust = ["--trust-factory", folder / "usernet.py"]  # the checkpoint names this code
    code, out, err = run(capsys, "evaluate", out_path, *trust)
    assert code == 0, err
    assert _accuracy(out) == pytest.approx(imported, abs=1e-4)  # test split, all 359 images
    experiment = tmp_path / "grid.yaml"  # a sweep file takes the imported checkpoint by path
    experiment.write_text(
        f"name: mine\ncheckpoints: [{out_path.name}]\ndataset: {{limit: 40}}\n"
        "attack: fgsm\ngrid: {eps: [0.05, 0.2]}\n"
    )
    for executor in ("local", "processes"):
        store = tmp_path / f"store-{executor}"
        code, out, err = run(
            capsys, "sweep", "run", experiment, "--out", store, "--executor", executor, *trust
        )
        assert code == 0, err
        code, out, err = run(capsys, "sweep", "top", experiment, "--out", store, "--k", "2")
        assert code == 0, err
        assert "0.2" in out.splitlines()[2]  # the larger eps leaves the lowest accuracy
    code, out, err = run(
        capsys,
        "transfer",
        "--surrogate",
        out_path,
        *model,
        *ADAPTER,
        "--dataset",
        "digits",
        "--attack",
        "fgsm",
        "--eps",
        "0.1",
        "--limit",
        "40",
        *trust,
    )
    assert code == 0, err
    assert "transfer rate" in out


def test_an_exported_program_is_a_model_too(capsys, own, tmp_path):
    folder, _ = own
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        net, (torch.rand(4, 1, 8, 8),), dynamic_shapes={"input": {0: batch}}
    )
    torch.export.save(program, tmp_path / "net.pt2")
    code, out, err = run(
        capsys,
        "attack",
        "--model",
        tmp_path / "net.pt2",
        "--dataset",
        "digits",
        "--attack",
        "fgsm",
        "--eps",
        "0.1",
        "--limit",
        "20",
    )
    assert code == 0, err
    assert "fgsm" in out


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["{ckpt}"], "Give a CHECKPOINT or --model, not both"),
        (["--dataset", "digits", "--weights", "{folder}/weights.pt", "--model", None], None),
        ([], "--model needs the data it takes: --dataset NAME or --data PATH"),
        (["--dataset", "digits", "--input-normalization", "mean=1,std=0"], "every std must be"),
        (["--dataset", "digits", "--bounds", "1,0"], "LOW < HIGH"),
        (["--dataset", "digits", "--model-arg", "width=3"], "unexpected keyword argument"),
    ],
)
def test_mistakes_with_a_users_model_are_one_line_errors(capsys, own, tmp_path, extra, phrase):
    folder, model = own
    if None in extra:  # --weights without --model: drop --model from the command
        argv = ["evaluate", "--dataset", "digits", "--weights", folder / "weights.pt"]
        phrase = "--weights go with --model"
    else:
        ckpt = tmp_path / "c.safetensors"
        argv = ["evaluate", *model, *[e.format(ckpt=ckpt, folder=folder) for e in extra]]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert phrase in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_benchmark_writes_a_card_and_report_compares_two(capsys, own, tmp_path):
    folder, model = own
    common = ["--eps", "0.1", "--limit", "30", "--strong-steps", "5", "--strong-queries", "100"]
    code, out, err = run(
        capsys,
        "benchmark",
        *model,
        *ADAPTER,
        "--dataset",
        "digits",
        *common,
        "--out",
        tmp_path / "mine",
    )
    assert code == 0, err
    card = json.loads((tmp_path / "mine" / "card.json").read_text())
    assert card["format"] == "saddlepoint-robustness-card"
    assert card["data"] == {"source": "digits", "split": "test", "images": 30}
    assert card["robust_accuracy"] <= min(card["per_attack"].values()) + 1e-9
    assert card["robust_accuracy"] < card["clean_accuracy"]
    assert card["model"]["sha256"] and card["software"]["torch"]
    assert (tmp_path / "mine" / "report.html").stat().st_size > 1000
    code, out, err = run(
        capsys,
        "benchmark",
        *model,
        *ADAPTER,
        "--dataset",
        "digits",
        *common,
        "--eps",
        "0.02",
        "--out",
        tmp_path / "small-eps",
    )
    assert code == 0, err
    code, out, err = run(
        capsys,
        "report",
        tmp_path / "mine",
        tmp_path / "small-eps" / "card.json",
        "--out",
        tmp_path / "cmp.html",
    )
    assert code == 0, err
    line = next(row for row in out.splitlines() if row.startswith("robust accuracy"))
    low, high = (float(v) for v in line.split()[-2:])
    assert low < high  # the smaller ball leaves more images robust
    assert (tmp_path / "cmp.html").is_file()
    code, _, err = run(capsys, "report", tmp_path / "cmp.html", tmp_path / "mine")
    assert code == 2 and "is not a readable robustness card" in err


def test_a_folder_of_pngs_round_trips_and_feeds_a_users_model(capsys, own, tmp_path):
    import numpy as np
    from PIL import Image

    from saddlepoint.data.files import load_files

    folder, model = own
    test = load_dataset("digits").test
    pixels = (test.images[:40, 0] * 255).round().to(torch.uint8).numpy()
    names = [f"digit-{int(label)}" for label in test.labels[:40]]
    for index, (image, name) in enumerate(zip(pixels, names)):
        (tmp_path / "pngs" / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(tmp_path / "pngs" / name / f"{index:03d}.png")
    data = load_files(tmp_path / "pngs")
    by_name = {}
    for image, label in zip(data.test.images, data.test.labels):
        by_name.setdefault(data.class_names[int(label)], []).append(image)
    for name in set(names):  # the same tensors came back, class by class, in file order
        written = [
            torch.from_numpy(p / np.float32(255))[None] for p, n in zip(pixels, names) if n == name
        ]
        assert all(torch.equal(a, b) for a, b in zip(by_name[name], written))
    code, out, err = run(capsys, "evaluate", *model, *ADAPTER, "--data", tmp_path / "pngs")
    assert code == 0, err
    assert int(out.splitlines()[2].split()[2]) == 40 and _accuracy(out) > 0.8
