"""`saddlepoint certify`: certified accuracy per radius, the per-image record and the plot."""

import json

from saddlepoint.cli.main import main
from saddlepoint.evaluate.smoothing import radius_from_counts


def test_certify_a_noise_trained_model(capsys, tmp_path):
    model = tmp_path / "noisy.safetensors"
    train = ["--quiet", "train", "--dataset", "digits", "--model", "mlp", "--epochs", "3"]
    train += ["--defense", "noise", "--noise-scale", "0.25", "--out", str(model)]
    assert main(train) == 0
    capsys.readouterr()
    certify = ["--quiet", "certify", str(model), "--sigma", "0.25", "--n", "400", "--n0", "40"]
    certify += ["--limit", "8", "--radii", "0,0.25,0.5", "--out", str(tmp_path / "cert")]
    assert main(certify) == 0
    out = capsys.readouterr().out
    assert "certified accuracy" in out and "abstained on" in out
    record = json.loads((tmp_path / "cert" / "certify.json").read_text())
    assert [p["radius"] for p in record["curve"]] == [0.0, 0.25, 0.5]
    accuracies = [p["certified accuracy"] for p in record["curve"]]
    assert accuracies == sorted(accuracies, reverse=True) and accuracies[0] > 0.5
    for image in record["images"]:  # every radius is the formula's from the recorded counts
        formula = radius_from_counts(image["count"], record["n"], record["alpha"], 0.25)
        assert image["radius"] <= formula
    assert (tmp_path / "cert" / "certified-accuracy.png").is_file()


def test_a_bad_sigma_is_one_line_naming_it(capsys, tmp_path):
    code = main(["certify", str(tmp_path / "missing.safetensors"), "--sigma", "abc"])
    assert code != 0 and "--sigma" in capsys.readouterr().err


def test_the_card_of_a_noise_trained_model_certifies_its_smoothed_version(capsys, tmp_path):
    model = tmp_path / "noisy.safetensors"
    train = ["--quiet", "train", "--dataset", "digits", "--model", "mlp", "--epochs", "3"]
    train += ["--defense", "noise", "--noise-scale", "0.25", "--out", str(model)]
    assert main(train) == 0
    card = ["benchmark", str(model), "--eps", "0.1", "--limit", "12", "--strong-steps", "3"]
    card += ["--strong-queries", "20", "--certify-limit", "6", "--certify-n", "300"]
    assert main([*card, "--out", str(tmp_path / "card")]) == 0
    captured = capsys.readouterr()
    assert "trained under Gaussian noise of sigma 0.25" in captured.err
    assert "certified (smoothed)" in captured.out
    record = json.loads((tmp_path / "card" / "card.json").read_text())
    certificate = record["certificate"]
    assert certificate["sigma"] == 0.25 and certificate["images"] == 6
    assert certificate["n"] == 300 and certificate["sigma_from"].startswith("the noise")
    accuracies = [p["certified accuracy"] for p in certificate["curve"]]
    assert accuracies == sorted(accuracies, reverse=True)
    assert (
        "certified accuracy of the smoothed model"
        in (tmp_path / "card" / "report.html").read_text()
    )
    # --sigma 0: no certificate; a model trained without noise gets none either
    assert main([*card, "--sigma", "0", "--out", str(tmp_path / "none")]) == 0
    assert json.loads((tmp_path / "none" / "card.json").read_text())["certificate"] is None
