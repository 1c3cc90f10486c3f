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


# --- lost or wrong without a word ------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    argv = ["--quiet", "train", "--dataset", "digits", "--model", "mlp", "--epochs", "5"]
    assert main([*argv, "--out", str(path)]) == 0
    return path


def _png_folder(root: Path, classes, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits test images of ``classes`` as PNGs in class folders; returns them as read."""
    import numpy as np
    from PIL import Image

    from saddlepoint.data import load_dataset

    test = load_dataset("digits").split("test")
    keep = torch.isin(test.labels, torch.tensor(list(classes)))
    for index in keep.nonzero().flatten().tolist():
        folder = root / str(int(test.labels[index]))
        folder.mkdir(parents=True, exist_ok=True)
        pixels = test.images[index, 0].numpy()
        if bits == 16:
            Image.fromarray((pixels * 65535).round().astype(np.uint16)).save(
                folder / f"{index}.png"
            )
        else:
            Image.fromarray((pixels * 255).round().astype(np.uint8)).save(folder / f"{index}.png")
    return test.images[keep], test.labels[keep]


@pytest.mark.parametrize("classes", [range(6), [3]])
def test_data_with_fewer_classes_than_the_model(classes, digits_checkpoint, tmp_path, capsys):
    images, labels = _png_folder(tmp_path / "data", classes)
    model, _ = load_checkpoint(digits_checkpoint)
    with torch.no_grad():
        predicted = model(images).argmax(1)
    code, text = _run(
        capsys,
        "evaluate",
        digits_checkpoint,
        "--data",
        tmp_path / "data",
        "--json",
        tmp_path / "e.json",
    )
    assert code == 0, text
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["accuracy"] == pytest.approx(float((predicted == labels).float().mean()))
    for c in classes:  # each class's accuracy counts that class's images, in the model's numbering
        mine = labels == c
        expected = float((predicted[mine] == c).float().mean())
        assert report["per_class_accuracy"][c] == pytest.approx(expected)
    matrix = torch.tensor(report["confusion_matrix"])
    assert matrix.shape[1] == 10 and int(matrix.sum()) == len(labels)


def test_sixteen_bit_pngs_keep_their_grey_levels(digits_checkpoint, tmp_path):
    from saddlepoint.data.files import load_files

    images, _ = _png_folder(tmp_path / "deep", range(10), bits=16)
    _png_folder(tmp_path / "plain", range(10), bits=8)
    deep = load_files(tmp_path / "deep").test
    plain = load_files(tmp_path / "plain").test
    assert deep.images.max() > 0.9 and len(torch.unique(deep.images)) > 10  # not saturated
    assert torch.allclose(deep.images, plain.images, atol=1 / 255)
    model, _ = load_checkpoint(digits_checkpoint)
    with torch.no_grad():
        agree = (model(deep.images).argmax(1) == model(plain.images).argmax(1)).float().mean()
    assert agree > 0.98


def test_a_card_never_goes_into_another_runs_folder(digits_checkpoint, tmp_path, capsys):
    run = _run_folder(tmp_path / "study-run")
    before = (run / "run.sqlite").read_bytes()
    code, text = _run(capsys, "benchmark", digits_checkpoint, "--eps", "0.1", "--out", run)
    assert code != 0 and "holds another run" in text
    assert (run / "run.sqlite").read_bytes() == before


@pytest.mark.parametrize("images", [-5, 0, 2.5, True])
def test_a_study_count_is_checked_before_anything_is_trained(images, tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_text(
        f"study: attack-grid\ndataset: digits\nparams: {{epochs: 1, images: {images}}}\n"
    )
    code, text = _run(capsys, "study", "run", study, "--out", tmp_path / "run")
    assert code != 0 and "params.images" in text
    assert not (tmp_path / "run" / "models").exists()  # nothing trained
    code, text = _run(
        capsys, "study", "run", study, "--out", tmp_path / "run2", "--param", "images=-5"
    )
    assert code != 0 and "params.images" in text


def test_a_sweeps_top_level_seed_is_every_attacks_seed(tmp_path):
    from saddlepoint.experiments.spec import SpecError, parse_spec

    base = {"checkpoints": ["m.safetensors"], "attack": "pgd", "grid": {"eps": [0.1]}}
    spec = parse_spec({**base, "seed": 7})
    assert {c["seed"] for c in spec.configurations()} == {7}
    with pytest.raises(SpecError, match="'seed' is given twice"):
        parse_spec({**base, "seed": 7, "fixed": {"seed": 3}})


@pytest.mark.parametrize("value", ["false", "true", "no", 0, 1])
def test_random_start_takes_only_true_or_false(value, tmp_path):
    from saddlepoint.attacks import PGD
    from saddlepoint.experiments.spec import SpecError, parse_spec

    with pytest.raises(ValueError, match="'random_start' parameter of PGD must be true or false"):
        PGD(eps=0.1, random_start=value)
    spec = {
        "checkpoints": ["m.safetensors"],
        "attack": "pgd",
        "grid": {"eps": [0.1]},
        "fixed": {"random_start": value},
    }
    with pytest.raises(SpecError, match="true or false"):
        parse_spec(spec)
    assert PGD(eps=0.1, random_start=False).random_start is False


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (lambda t: t.fill_(float("nan")), "NaN or infinite values"),
        (lambda t: t.fill_(float("inf")), "NaN or infinite values"),
        (lambda t: t.to(torch.int8), "dtype"),
    ],
)
def test_weights_that_are_not_finite_floats_are_refused(
    change, phrase, digits_checkpoint, tmp_path, capsys
):
    from safetensors import safe_open

    with safe_open(str(digits_checkpoint), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    first = next(k for k in tensors if k.endswith("weight"))
    tensors[first] = change(tensors[first].clone())
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match=phrase):
        load_checkpoint(tmp_path / "bad.safetensors")
    code, text = _run(
        capsys, "attack", tmp_path / "bad.safetensors", "--attack", "fgsm", "--eps", "0.1"
    )
    assert code != 0 and phrase in text


def test_nan_logits_are_refused_by_every_attack():
    from saddlepoint.attacks import PGD

    class Broken(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 10), float("nan"))

    with pytest.raises(ValueError, match="NaN or infinite logits"):
        PGD(eps=0.1, steps=2)(Broken(), torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))


def test_tensors_given_to_load_dataset_must_pair_up():
    from saddlepoint.data import load_dataset

    images = torch.rand(40, 1, 8, 8)
    with pytest.raises(ValueError, match="one label per image: 40 images"):
        load_dataset((images, torch.zeros(5, dtype=torch.long)))
    with pytest.raises(ValueError, match="at least 0. Got -1"):
        load_dataset((images, torch.tensor([-1] + [0] * 39)))
    with pytest.raises(ValueError, match="whole class indices"):
        load_dataset((images, torch.zeros(40)))
    assert len(load_dataset((images, torch.arange(40) % 4)).train) > 0


def test_config_files_with_a_list_or_a_folder_say_so(digits_checkpoint, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("attack: pgd\neps: 0.1\nsteps: [1, 2]\n")
    code, text = _run(capsys, "attack", digits_checkpoint, "--config", config)
    assert code != 0 and "'steps'" in text and "takes one value" in text
    code, text = _run(capsys, "attack", digits_checkpoint, "--config", tmp_path)
    assert code != 0 and "is a folder" in text


# --- small input, large cost -----------------------------------------------------------------


def test_an_npz_decompresses_only_the_rows_it_is_asked_for(tmp_path, monkeypatch):
    import numpy as np

    from saddlepoint.data import files

    labels = np.zeros(100_000, dtype=np.int64)
    np.savez_compressed(
        tmp_path / "big.npz", images=np.zeros((100_000, 28, 28), np.uint8), labels=labels
    )
    assert (tmp_path / "big.npz").stat().st_size < 1_000_000  # 78 MB of pixels inside
    monkeypatch.setattr(files, "MAX_ARRAY_BYTES", 10_000_000)
    data = files.load_files(tmp_path / "big.npz", limit=5)
    assert data.test.images.shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="give a limit"):
        files.load_files(tmp_path / "big.npz")


def test_a_checkpoint_declaring_a_huge_model_fails_before_building_it(digits_checkpoint, tmp_path):
    import resource

    from safetensors import safe_open

    with safe_open(str(digits_checkpoint), framework="pt") as handle:
        meta = json.loads(handle.metadata()["saddlepoint"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    meta["model"] = {
        "name": "cnn",
        "in_shape": [1, 8, 8],
        "num_classes": 10,
        "kwargs": {"channels": [8000, 8000]},
    }
    save_file(
        tensors, str(tmp_path / "huge.safetensors"), metadata={"saddlepoint": json.dumps(meta)}
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="do not match the architecture"):
        load_checkpoint(tmp_path / "huge.safetensors")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 500_000  # the model would take gigabytes


@pytest.mark.parametrize("where", ["sweep", "study", "config"])
def test_yaml_aliases_are_refused_at_once(where, digits_checkpoint, tmp_path, capsys):
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")
    )
    file = tmp_path / "laughs.yaml"
    file.write_text(laughs)
    assert len(laughs) < 600
    argv = {
        "sweep": ["sweep", "run", file],
        "study": ["study", "run", file],
        "config": ["attack", digits_checkpoint, "--config", file],
    }[where]
    code, text = _run(capsys, *argv)
    assert code != 0 and "aliases" in text


def test_a_huge_range_is_counted_before_it_is_built():
    from saddlepoint.experiments.spec import SpecError, parse_spec

    spec = {"checkpoints": ["m.safetensors"], "attack": "pgd", "grid": {"steps": ["1..5000000"]}}
    with pytest.raises(SpecError, match="5,000,000 values"):
        parse_spec(spec)


def test_an_image_declaring_twenty_thousand_pixels_a_side_is_refused(
    tmp_path, capsys, digits_checkpoint
):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    (tmp_path / "data" / "0").mkdir(parents=True)
    (tmp_path / "data" / "0" / "big.png").write_bytes(png)
    code, text = _run(capsys, "evaluate", digits_checkpoint, "--data", tmp_path / "data")
    assert code != 0 and "big.png is not a readable image" in text and "Traceback" not in text


# --- faults: a full disk, an immutable store, a read-only run ---------------------------------


@pytest.fixture()
def small_disk(tmp_path):
    """A 512 KiB tmpfs (root only: the test is skipped where mounting is not allowed); yields
    a function that fills it to leave ``free`` bytes."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")

    def fill(free: int) -> Path:
        import shutil

        (mount / "filler").unlink(missing_ok=True)
        room = shutil.disk_usage(mount).free
        (mount / "filler").write_bytes(bytes(max(room - free, 0)))
        return mount

    yield fill
    subprocess.run(["umount", "-l", str(mount)], check=False)


TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--epochs",
    "1",
    "--out",
    "{disk}/m.safetensors",
]
FULL_DISK_CASES = {
    # name: (command line, with {disk} the small disk and {ckpt} a checkpoint; bytes left free)
    "train, no room": (TRAIN, 8_000),
    "train, room for the probe only": (TRAIN, 150_000),
    "attack --save": (
        ["attack", "{ckpt}", "--attack", "fgsm", "--eps", "0.1", "--save", "{disk}/adv"],
        8_000,
    ),
    "evaluate --json": (["evaluate", "{ckpt}", "--json", "{disk}/e.json"], 8_000),
    "study run": (["study", "run", "{study}", "--out", "{disk}/run"], 8_000),
    "study run, room for the probe only": (
        ["study", "run", "{study}", "--out", "{disk}/run"],
        150_000,
    ),
    "report --out": (["report", "{run}", "--out", "{disk}/r.html"], 8_000),
    "sweep export": (
        ["sweep", "export", "{sweep}", "--out", "{store}", "--to", "{disk}/x.csv"],
        8_000,
    ),
}


@pytest.mark.parametrize("case", list(FULL_DISK_CASES))
def test_a_full_disk_is_one_line_naming_the_path(
    case, small_disk, digits_checkpoint, tmp_path, capsys
):
    argv, free = FULL_DISK_CASES[case]
    disk = small_disk(free)
    (disk / "earlier.json").write_text('{"kept": true}')  # written before: never damaged
    study = tmp_path / "s.yaml"
    study.write_text("study: attack-grid\ndataset: digits\nparams: {epochs: 1, images: 20}\n")
    names = {
        "disk": disk,
        "ckpt": digits_checkpoint,
        "study": study,
        "run": _run_folder(tmp_path / "run"),
        "sweep": tmp_path / "sweep.yaml",
        "store": tmp_path / "store",
    }
    if "{sweep}" in argv:
        names["sweep"].write_text(
            f"name: s\ncheckpoints: [{digits_checkpoint}]\nattack: fgsm\n"
            "grid: {eps: [0.1]}\ndataset: {limit: 20}\n"
        )
        assert _run(capsys, "sweep", "run", names["sweep"], "--out", names["store"])[0] == 0
    code, text = _run(capsys, *[a.format(**names) for a in argv])
    assert code != 0 and "Traceback" not in text
    assert str(disk) in text or "disk/" in text  # the path, not a bare "No space left"
    assert "No space left" in text or "no room" in text or "disk is full" in text
    assert (disk / "earlier.json").read_text() == '{"kept": true}'
    assert not list(disk.rglob("*.part"))  # no half-written file left behind


def test_an_immutable_store_fails_before_the_work(digits_checkpoint, tmp_path, capsys):
    import subprocess

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        f"name: s\ncheckpoints: [{digits_checkpoint}]\nattack: fgsm\ngrid: {{eps: [0.1]}}\n"
    )
    assert _run(capsys, "sweep", "run", sweep, "--out", tmp_path / "runs")[0] == 0
    store = tmp_path / "runs" / "results.sqlite"
    if not store.exists():
        store = next((tmp_path / "runs").rglob("*.sqlite"))
    sweep.write_text(
        f"name: s\ncheckpoints: [{digits_checkpoint}]\nattack: fgsm\ngrid: {{eps: [0.1, 0.2]}}\n"
    )
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        before = store.read_bytes()
        code, text = _run(capsys, "sweep", "run", sweep, "--out", tmp_path / "runs")
        assert code != 0 and "cannot write" in text and str(store.name) in text
        assert store.read_bytes() == before
        code, text = _run(capsys, "sweep", "status", sweep, "--out", tmp_path / "runs")
        assert code == 0 and "1 / 2 configurations done" in text  # still readable
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=False)


def test_a_read_only_run_folder_can_still_be_reported(small_disk, tmp_path, capsys):
    import shutil
    import subprocess

    disk = small_disk(400_000)
    run = _run_folder(tmp_path / "run")
    shutil.copytree(run, disk / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    code, text = _run(capsys, "report", disk / "run", "--out", tmp_path / "r.html")
    assert code == 0, text
    assert "data:image/png;base64" in (tmp_path / "r.html").read_text()
    code, text = _run(capsys, "report", disk / "run")  # its default page cannot be written
    assert code != 0 and str(disk / "run") in text and "Traceback" not in text
