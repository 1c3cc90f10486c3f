import json

from saddlepoint.checkpoint import read_metadata
from saddlepoint.cli.main import main


def test_train_with_defenses_and_audit(tmp_path, capsys):
    quantized = tmp_path / "q.safetensors"
    argv = ["--quiet", "train", "--epochs", "6", "--quantize", "tanh:8", "--out", str(quantized)]
    assert main(argv) == 0
    robust = tmp_path / "at.safetensors"
    argv = [
        "--quiet",
        "train",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--defense",
        "adversarial",
        "--defense-attack",
        "fgsm-rs",
    ]
    assert main([*argv, "--defense-eps", "0.1", "--fraction", "0.5", "--out", str(robust)]) == 0
    defense = read_metadata(robust)["defense"]
    assert defense["attack"] == "fgsm-rs" and defense["fraction"] == 0.5
    common = ["--eps", "0.1", "--limit", "60", "--steps", "8", "--queries", "100"]
    common += ["--strong-queries", "300"]
    assert main(["--quiet", "audit", str(quantized), *common]) == 0
    naive = json.loads((tmp_path / "q-audit.json").read_text())
    assert (
        main(
            [
                "--quiet",
                "audit",
                str(quantized),
                *common,
                "--bpda",
                "identity",
                "--json",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    honest = json.loads((tmp_path / "b.json").read_text())
    out = capsys.readouterr().out
    assert "gradient masking suspected" in out
    assert "fwd/img" in out and set(honest["passes_per_image"]) == set(honest["accuracies_at_eps"])
    assert naive["passed"] is False
    checks = {c["name"]: c for c in honest["checks"]}
    assert checks["gradients are not zero or NaN on many inputs"]["passed"]
    assert checks["an unbounded attack reaches ~0%"]["passed"]


def test_trades_and_noise_from_the_cli(tmp_path):
    for extra in (
        ["--defense", "trades", "--defense-eps", "0.1", "--defense-steps", "2"],
        ["--defense", "noise", "--noise-scale", "0.2"],
    ):
        path = tmp_path / f"{extra[1]}.safetensors"
        assert (
            main(
                ["--quiet", "train", "--model", "mlp", "--epochs", "1", *extra, "--out", str(path)]
            )
            == 0
        )
        assert read_metadata(path)["defense"]["name"] == extra[1]
