"""README is a front page whose examples run: its Python example is executed as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text
    assert text.index("make demo") < text.index("## From Python")  # the two commands first


def test_the_python_example_runs_and_strongest_is_no_weaker_than_pgd(monkeypatch, tmp_path):
    (code,) = _blocks("python")
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102
    printed = dict(
        line.split()
        for line in out.getvalue().splitlines()
        if line.startswith(("pgd ", "strongest "))
    )
    assert set(printed) == {"pgd", "strongest"}
    pgd, strongest = float(printed["pgd"]), float(printed["strongest"])
    assert 0.0 <= strongest <= pgd <= 1.0


def test_every_command_line_example_names_a_real_command():
    from saddlepoint.cli.main import main

    (shell,) = [b for b in _blocks("bash") if "$S " in b]
    commands = {line.split()[1] for line in shell.splitlines() if line.startswith("$S ")}
    for command in commands:
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            assert main([command, "--help"]) == 0


def test_links_in_the_readme_point_at_files_that_exist():
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        assert (ROOT / target).exists(), target
