"""Inputs crafted by a hostile or careless user, each made here by the test itself.

Every case asserts one of three things: a clear error (and, where the input carries a payload,
that the marker the payload would create does not appear), files left unchanged, or the right
number. The security cases first: a model file must never choose the code that runs.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from saddlepoint.checkpoint import load_checkpoint
from saddlepoint.cli.main import main
from saddlepoint.models.exported import load_exported, safe_archive
from saddlepoint.models.external import EXPORTED_KEY, external_model


def _run(capsys, *argv) -> tuple[int, str]:
    code = main(["--quiet", *[str(a) for a in argv]])
    out = capsys.readouterr()
    return code, out.out + out.err


# --- exported programs ---------------------------------------------------------------------


class _Payload:
    """Unpickled, it creates ``marker`` and then returns a real weight, so that a load that
    ran it would look normal."""

    def __init__(self, marker: Path, shape: tuple[int, ...]) -> None:
        self.marker, self.shape = str(marker), shape

    def __reduce__(self):
        code = (
            f"(__import__('os').mkdir({self.marker!r}), __import__('torch').zeros{self.shape})[1]"
        )
        return (eval, (code,))


def _program_bytes() -> bytes:
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        net, (torch.rand(4, 1, 8, 8),), dynamic_shapes={"input": {0: batch}}
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


PROGRAM = _program_bytes()
Change = Callable[[str, bytes], bytes]


def _rewrite(change: Change, extra: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    """PROGRAM with each entry passed through ``change``; ``extra`` entries written first."""
    source = zipfile.ZipFile(io.BytesIO(PROGRAM))
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as target:
        warnings.simplefilter("ignore")  # "Duplicate name": the point of one case
        for name, content in extra:
            target.writestr(name, content)
        for name in source.namelist():
            target.writestr(name, change(name, source.read(name)))
    return out.getvalue()


def _entry(suffix: str) -> str:
    return next(n for n in zipfile.ZipFile(io.BytesIO(PROGRAM)).namelist() if n.endswith(suffix))


def _pickled_weight(flag: object, marker: Path) -> Change:
    """weight_0 stored by pickle (a payload), its config flag set to ``flag``."""

    def change(name: str, content: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(content)
            for entry in config["config"].values():
                if entry["path_name"] == "weight_0":
                    entry["use_pickle"] = flag
            return json.dumps(config).encode()
        if name.endswith("weights/weight_0"):
            buffer = io.BytesIO()
            torch.save(_Payload(marker, (10, 64)), buffer)
            return buffer.getvalue()
        return content

    return change


def _program_json(edit: Callable[[dict], None]) -> Change:
    def change(name: str, content: bytes) -> bytes:
        if name.endswith("models/model.json"):
            program = json.loads(content)
            edit(program)
            return json.dumps(program).encode()
        return content

    return change


def _replace_in_program(old: str, new: str) -> Change:
    def change(name: str, content: bytes) -> bytes:
        if name.endswith("models/model.json"):
            return content.replace(old.encode(), new.encode())
        return content

    return change


def _set_guards(marker: Path) -> Change:
    def edit(program: dict) -> None:
        program["guards_code"] = [f"__import__('os').mkdir({str(marker)!r}) is None"]

    return _program_json(edit)


def _set_first_target(target: str) -> Change:
    def edit(program: dict) -> None:
        program["graph_module"]["graph"]["nodes"][0]["target"] = target

    return _program_json(edit)


def _duplicate_config(marker: Path) -> bytes:
    """A malicious weights config first, the benign one last (Python's zipfile reads the last)."""
    evil = zipfile.ZipFile(io.BytesIO(_rewrite(_pickled_weight(True, marker))))
    config = _entry("model_weights_config.json")
    weight = _entry("weights/weight_0")
    return _rewrite(
        lambda n, c: evil.read(weight) if n == weight else c, ((config, evil.read(config)),)
    )


def _keep(name: str, content: bytes) -> bytes:
    return content


PROGRAM_CASES = {
    # name: (archive maker given the marker, phrase of the refusal, does raw torch run it?)
    "use_pickle 1": (lambda m: _rewrite(_pickled_weight(1, m)), "use_pickle 1", True),
    "use_pickle 'yes'": (lambda m: _rewrite(_pickled_weight("yes", m)), "use_pickle 'yes'", True),
    "use_pickle true": (lambda m: _rewrite(_pickled_weight(True, m)), "use_pickle True", True),
    "two configs of one name": (_duplicate_config, "two entries with one name", False),
    "code in a shape expression": (
        lambda m: _rewrite(
            _replace_in_program("Symbol(", f"(__import__('os').mkdir({str(m)!r}) or Symbol)(")
        ),
        "symbolic expression",
        True,
    ),
    "guard code": (lambda m: _rewrite(_set_guards(m)), "guard code", True),
    "a torch function as an operator": (
        lambda m: _rewrite(_set_first_target("torch.hub.load")),
        "the operator 'torch.hub.load'",
        False,
    ),
    "an unknown entry": (
        lambda m: _rewrite(_keep, (("archive/data/aotinductor/model.so", b"\x7fELF"),)),
        "an entry a plain exported module does not have",
        False,
    ),
    "a legacy pickled weights file": (
        lambda m: _rewrite(_keep, (("archive/data/weights/model.pt", b"x"),)),
        "an entry a plain exported module does not have",
        False,
    ),
    "a custom object": (
        lambda m: _rewrite(_keep, (("archive/data/constants/custom_obj_0", b"x"),)),
        "an entry a plain exported module does not have",
        False,
    ),
    "sample inputs that need unpickling": (
        lambda m: _rewrite(
            lambda n, c: (
                _pickle_bytes(_Payload(m, (1,))) if n.endswith("sample_inputs/model.pt") else c
            )
        ),
        "sample inputs that need full unpickling",
        False,  # torch tries weights_only first, then falls back to full unpickling
    ),
}


def _pickle_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(PROGRAM_CASES))
def test_a_program_archive_never_runs_its_payload(case, tmp_path, capsys):
    make, phrase, live = PROGRAM_CASES[case]
    marker = tmp_path / "ran"
    archive = make(marker)
    (tmp_path / "x.pt2").write_bytes(archive)
    with pytest.raises(ValueError, match=phrase):
        safe_archive(archive, "x.pt2")
    with pytest.raises(ValueError, match="refused"):
        external_model(str(tmp_path / "x.pt2"), in_shape=(1, 8, 8))
    code, text = _run(capsys, "evaluate", "--model", tmp_path / "x.pt2", "--dataset", "digits")
    assert code != 0 and "refused" in text and "Traceback" not in text
    # A checkpoint carrying the same bytes (as `import` would have made) is refused too.
    save_file(
        {EXPORTED_KEY: torch.frombuffer(bytearray(archive), dtype=torch.uint8)},
        str(tmp_path / "c.safetensors"),
        metadata={
            "saddlepoint": json.dumps(
                {
                    "format": "saddlepoint-checkpoint",
                    "format_version": 1,
                    "model": {
                        "name": "exported",
                        "in_shape": [1, 8, 8],
                        "num_classes": 10,
                        "kwargs": {},
                    },
                }
            )
        },
    )
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(tmp_path / "c.safetensors")
    assert not marker.exists()
    if live:  # the payload is real: torch's own loader runs it
        with warnings.catch_warnings(), pytest.raises(Exception):  # noqa: B017, PT011
            warnings.simplefilter("ignore")
            torch.export.load(io.BytesIO(archive)).module()(torch.rand(2, 1, 8, 8))
            raise RuntimeError("loaded")  # some payloads load quietly: make the block raise
        assert marker.exists()


def test_the_clean_archive_loads_from_its_canonical_copy():
    canonical = safe_archive(PROGRAM, "clean")
    assert safe_archive(canonical, "again") == canonical  # a fixed point
    module, kept = load_exported(PROGRAM, "clean")
    assert kept == canonical
    x = torch.rand(3, 1, 8, 8)
    assert module(x).shape == (3, 10)


# --- factories named by a checkpoint ---------------------------------------------------------

BENIGN = """
from torch import nn

def make(classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))
"""


def _factory_checkpoint(path: Path, factory: str, kwargs: dict) -> Path:
    """A checkpoint whose metadata names ``factory``, with weights for BENIGN's model."""
    tensors = {
        "model.1.weight": torch.zeros(10, 64),
        "model.1.bias": torch.zeros(10),
    }
    meta = {
        "format": "saddlepoint-checkpoint",
        "format_version": 1,
        "model": {
            "name": "external",
            "factory": factory,
            "kwargs": kwargs,
            "in_shape": [1, 8, 8],
            "num_classes": 10,
        },
        "dataset": {"name": "digits"},
    }
    save_file(tensors, str(path), metadata={"saddlepoint": json.dumps(meta)})
    return path


FACTORY_CASES = {
    # name: (factory, kwargs, modules the user trusts, phrase)
    "os:system, untrusted": ("os:system", {"command": "mkdir {marker}"}, [], "--trust-factory os"),
    "os:system, trusted": ("os:system", {"command": "mkdir {marker}"}, ["os"], "standard library"),
    "subprocess:run with a shell": (
        "subprocess:run",
        {"args": "mkdir {marker}", "shell": True},
        ["subprocess"],
        "standard library",
    ),
    "builtins:exec": (
        "builtins:exec",
        {"source": "import os; os.mkdir({marker!r})"},
        ["builtins"],
        "standard library",
    ),
    "a .py file that runs on import": ("{evil}:make", {}, [], "--trust-factory"),
    "a .py file, another module trusted": ("{evil}:make", {}, ["{benign}"], "--trust-factory"),
    "os.system re-exported by a trusted file": (
        "{alias}:make",
        {},
        ["{alias}"],
        "standard library",
    ),
}


@pytest.mark.parametrize("case", list(FACTORY_CASES))
def test_a_checkpoint_never_calls_a_factory_the_user_did_not_trust(case, tmp_path, capsys):
    factory, kwargs, trusted, phrase = FACTORY_CASES[case]
    marker = tmp_path / "ran"
    (tmp_path / "evil.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n{BENIGN}")
    (tmp_path / "benign.py").write_text(BENIGN)
    (tmp_path / "alias.py").write_text("from os import system as make\n")
    names = {
        "marker": str(marker),
        "evil": tmp_path / "evil.py",
        "benign": tmp_path / "benign.py",
        "alias": tmp_path / "alias.py",
    }
    kwargs = {k: v.format(**names) if isinstance(v, str) else v for k, v in kwargs.items()}
    trusted = [t.format(**names) for t in trusted]
    path = _factory_checkpoint(tmp_path / "m.safetensors", factory.format(**names), kwargs)
    with pytest.raises(ValueError, match=phrase):
        load_checkpoint(path, trust_factory=trusted)
    flags = [a for t in trusted for a in ("--trust-factory", t)]
    code, text = _run(capsys, "evaluate", path, *flags)
    assert code != 0 and phrase in text and "Traceback" not in text
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: s\ncheckpoints: [{path}]\nattack: fgsm\ngrid: {{eps: [0.1]}}\n")
    code, text = _run(capsys, "sweep", "run", sweep, "--out", tmp_path / "runs", *flags)
    assert code != 0 and phrase in text
    assert not marker.exists()


def test_a_trusted_factory_loads_and_its_source_is_part_of_the_sweep_rows(tmp_path, capsys):
    from saddlepoint.experiments import load_spec
    from saddlepoint.experiments.engine import input_digests

    (tmp_path / "net.py").write_text(BENIGN)
    path = _factory_checkpoint(tmp_path / "m.safetensors", f"{tmp_path / 'net.py'}:make", {})
    model, _ = load_checkpoint(path, trust_factory=[str(tmp_path / "net.py")])
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    # the full reference trusts too; the same module with another callable does not
    load_checkpoint(path, trust_factory=[f"{tmp_path / 'net.py'}:make"])
    with pytest.raises(ValueError, match="--trust-factory"):
        load_checkpoint(path, trust_factory=[f"{tmp_path / 'net.py'}:other"])
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: s\ncheckpoints: [{path}]\nattack: fgsm\ngrid: {{eps: [0.1]}}\n")
    trust = [str(tmp_path / "net.py")]
    before = input_digests(load_spec(sweep))
    (tmp_path / "net.py").write_text(BENIGN + "\n# the factory's code changed\n")
    assert input_digests(load_spec(sweep)) != before
    code, text = _run(
        capsys, "sweep", "run", sweep, "--out", tmp_path / "runs", "--trust-factory", trust[0]
    )
    assert code == 0, text


# --- reports: only the run's own files in, nothing but the report out ------------------------


def _run_folder(folder: Path, figure: str | None = None) -> Path:
    from saddlepoint.runlog import RunLog, Section
    from saddlepoint.viz.style import plt, save_figure

    with RunLog(folder) as log:
        log.set_meta("title", "probe")
        path = log.figure_path("a.png")
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        save_figure(fig, path)
        log.add(Section("s", "S", figures=[("figures/a.png", "a")]))
    if figure is not None:  # a log edited to name another file
        import sqlite3

        with sqlite3.connect(folder / "run.sqlite") as db:
            db.execute("UPDATE figures SET path = ?", (figure,))
    return folder


@pytest.mark.parametrize("where", ["../secret.png", "absolute"])
def test_a_report_embeds_no_file_outside_its_run_folder(where, tmp_path, capsys):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG private bytes")
    figure = str(secret) if where == "absolute" else where
    run = _run_folder(tmp_path / "run", figure)
    code, text = _run(capsys, "report", run, "--out", tmp_path / "r.html")
    assert code != 0 and "outside the run folder" in text
    assert not (tmp_path / "r.html").exists()
    code, text = _run(capsys, "report", run, "--markdown", tmp_path / "doc")
    assert code != 0 and "outside the run folder" in text
    assert not (tmp_path / "doc" / "figures" / "secret.png").exists()


@pytest.mark.parametrize("target", ["run.sqlite", "figures/a.png", "notes.txt"])
def test_a_report_never_replaces_a_file_it_did_not_write(target, tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    (run / "notes.txt").write_text("the user's notes")
    before = (run / target).read_bytes()
    code, text = _run(capsys, "report", run, "--out", run / target)
    assert code != 0 and "did not write" in text
    assert (run / target).read_bytes() == before
    code, text = _run(capsys, "report", run)  # the default page, again and again
    assert code == 0 and _run(capsys, "report", run)[0] == 0


def test_markdown_keeps_what_it_did_not_write(tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    doc = tmp_path / "doc"
    (doc / "figures").mkdir(parents=True)
    (doc / "figures" / "logo.png").write_bytes(b"the user's logo")
    (doc / "README.md").write_text("# My project\n")
    code, text = _run(capsys, "report", run, "--markdown", doc)
    assert code != 0 and "was not written by a report" in text
    assert (doc / "README.md").read_text() == "# My project\n"
    (doc / "README.md").unlink()
    (doc / "figures" / "a.png").write_bytes(b"another image of the same name")
    code, text = _run(capsys, "report", run, "--markdown", doc)
    assert code != 0 and "was not written by this report" in text
    (doc / "figures" / "a.png").unlink()
    assert _run(capsys, "report", run, "--markdown", doc)[0] == 0
    assert (doc / "figures" / "logo.png").read_bytes() == b"the user's logo"
    code, text = _run(capsys, "report", run, "--markdown", run)
    assert code != 0 and "the run folder itself" in text


def test_reporting_writes_nothing_into_the_run_folder(tmp_path, capsys):
    def files() -> dict[Path, bytes]:  # SQLite's own side files (-wal, -shm) aside
        return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and "-" not in p.name}

    run = _run_folder(tmp_path / "run")
    before = files()
    assert _run(capsys, "report", run, "--out", tmp_path / "r.html")[0] == 0
    assert files() == before
