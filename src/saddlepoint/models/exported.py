"""Exported programs (``torch.export`` ``.pt2`` archives), read so that the file chooses no code.

``torch.export.load`` trusts its archive: it unpickles a weight whose config has any truthy
``use_pickle``, unpickles custom and opaque objects, evaluates symbolic shape expressions with
``sympy.sympify`` (which calls ``eval``), compiles the program's guard code, and the program may
name any ``torch`` callable as an operator. So an archive is parsed here against an allow-list
of what ``torch.export.save`` writes for a plain module, and torch is handed a canonical copy
rebuilt from exactly the entries that were checked (two zip readers can never disagree on which
of two same-named entries counts):

* every entry named once, under one root folder, with a name from the format's fixed list;
* payload configs: exactly the keys torch writes, ``use_pickle`` exactly ``false``, each path a
  raw tensor file present in the archive;
* sample inputs that ``torch.load(weights_only=True)`` reads (torch tries that first);
* the program: every operator an ATen operator or one of a few arithmetic ones, every symbolic
  expression made of numbers, symbol names and sympy's constructors only, no guard code, no
  custom objects.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

MAX_ARCHIVE_BYTES = 4 << 30  # what the entries may inflate to, before anything is read

_MODEL = r"[A-Za-z0-9_]+"
_ENTRIES = [
    re.compile(pattern)
    for pattern in (
        r"archive_format",
        r"archive_version",
        r"byteorder",
        r"\.data/version",
        r"\.data/serialization_id",
        rf"models/{_MODEL}\.json",
        rf"data/sample_inputs/{_MODEL}\.pt",
        rf"data/weights/{_MODEL}_weights_config\.json",
        r"data/weights/weight_\d+",
        rf"data/constants/{_MODEL}_constants_config\.json",
        r"data/constants/tensor_\d+",
    )
]
_PAYLOAD_KEYS = {"path_name", "is_param", "use_pickle", "tensor_meta"}
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_ATEN = re.compile(rf"torch\.ops\.aten\.{_IDENTIFIER}\.{_IDENTIFIER}")
_PYTHON_OPERATORS = {
    f"_operator.{name}"
    for name in [
        "getitem",
        "add",
        "sub",
        "mul",
        "truediv",
        "floordiv",
        "mod",
        "pow",
        "neg",
        "pos",
        "abs",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and_",
        "or_",
        "not_",
    ]
} | {
    f"torch.{name}" for name in ["sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "sym_ite"]
}
_SYMPY_NAMES = set(
    [
        "Symbol",
        "Integer",
        "Rational",
        "Float",
        "Add",
        "Mul",
        "Pow",
        "Abs",
        "Max",
        "Min",
        "Mod",
        "Eq",
        "Ne",
        "Lt",
        "Le",
        "Gt",
        "Ge",
        "And",
        "Or",
        "Not",
        "StrictLessThan",
        "StrictGreaterThan",
        "LessThan",
        "GreaterThan",
        "Equality",
        "Unequality",
        "true",
        "false",
        "True",
        "False",
        "oo",
        "zoo",
        "nan",
        "Infinity",
        "NegativeInfinity",
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "CleanDiv",
        "CeilDiv",
        "CeilToInt",
        "FloorToInt",
        "IntTrueDiv",
        "FloatTrueDiv",
        "FloatPow",
        "PowByNatural",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
        "LShift",
        "RShift",
        "IsNonOverlappingAndDenseIndicator",
        "int_oo",
        "IntInfinity",
        "NegativeIntInfinity",
        "positive",
        "negative",
        "nonnegative",
        "nonpositive",
        "integer",
        "real",
        "finite",
        "zero",
        "nonzero",
        "even",
        "odd",
        "commutative",
    ]
)
_SYMBOL = re.compile(r"[a-z]{1,4}\d+")
_EXPRESSION_TOKEN = re.compile(
    r"\s+|'(?P<quoted>[^'\\]*)'|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>\d{1,40}(?:\.\d{1,40})?"
    r"(?:[eE][+-]?\d{1,4})?)|\*\*|[-+*/%(),=<>!.]"
)


def _refuse(source: str, what: str, where: str) -> ValueError:
    return ValueError(
        f"{source}: refused; the archive holds {what} ({where}), which loading could turn into "
        "code that runs. Export a plain module with torch.export.save."
    )


def safe_archive(data: bytes, source: str) -> bytes:
    """Check a ``.pt2`` archive against the allow-list; return the canonical copy to load.

    Raises ValueError naming ``source`` and the first entry that is not allowed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError(f"{source}: not a torch.export archive (.pt2 is a zip file).") from None
    with archive:
        infos = archive.infolist()
        entries = _entries(infos, source)
        total = sum(info.file_size for info in infos)
        if total > MAX_ARCHIVE_BYTES:
            raise ValueError(
                f"{source}: its entries would inflate to {total:,} bytes, more than the "
                f"{MAX_ARCHIVE_BYTES:,} a model archive may hold."
            )
        contents = {inner: archive.read(info) for inner, info in entries.items()}
    _check_contents(contents, source)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as canonical:
        for inner, content in contents.items():
            canonical.writestr(f"archive/{inner}", content)
    return out.getvalue()


def _entries(infos: list[zipfile.ZipInfo], source: str) -> dict[str, zipfile.ZipInfo]:
    """Each entry by its name inside the root folder; duplicates and unknown names refused."""
    entries: dict[str, zipfile.ZipInfo] = {}
    roots = set()
    for info in infos:
        root, _, inner = info.filename.partition("/")
        roots.add(root)
        if inner in entries:
            raise _refuse(source, "two entries with one name", info.filename)
        if not any(pattern.fullmatch(inner) for pattern in _ENTRIES):
            raise _refuse(source, "an entry a plain exported module does not have", info.filename)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _refuse(source, "an entry in an unusual compression", info.filename)
        entries[inner] = info
    if len(roots) != 1 or "archive_format" not in entries:
        raise ValueError(f"{source}: a zip file, but not a torch.export archive.")
    return entries


def _check_contents(contents: dict[str, bytes], source: str) -> None:
    for inner, content in contents.items():
        if inner.endswith("_config.json"):
            _check_payload_config(content, inner, contents, source)
        elif inner.startswith("models/"):
            _check_program(_json(content, inner, source), inner, source)
        elif inner.startswith("data/sample_inputs/"):
            try:
                with warnings.catch_warnings():  # a protocol warning, not our user's concern
                    warnings.simplefilter("ignore")
                    torch.load(io.BytesIO(content), weights_only=True)
            except Exception:
                raise _refuse(source, "sample inputs that need full unpickling", inner) from None


def _json(content: bytes, inner: str, source: str) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{source}: {inner} is not valid JSON.") from None


def _check_payload_config(
    content: bytes, inner: str, contents: dict[str, bytes], source: str
) -> None:
    config = _json(content, inner, source)
    folder = inner.rsplit("/", 1)[0]
    prefix = "weight_" if folder == "data/weights" else "tensor_"
    if not isinstance(config, dict) or set(config) != {"config"}:
        raise _refuse(source, "a payload config of an unknown shape", inner)
    payloads = config["config"]
    if not isinstance(payloads, dict):
        raise _refuse(source, "a payload config of an unknown shape", inner)
    for name, payload in payloads.items():
        where = f"{inner}: {name}"
        if not isinstance(payload, dict) or not set(payload) <= _PAYLOAD_KEYS:
            raise _refuse(source, "a payload entry of an unknown shape", where)
        if payload.get("use_pickle") is not False:
            raise _refuse(
                source,
                f"tensors stored by pickle (use_pickle {payload.get('use_pickle')!r})",
                where,
            )
        path = payload.get("path_name")
        if not isinstance(path, str) or not re.fullmatch(rf"{prefix}\d+", path):
            raise _refuse(source, f"a payload path that is not a raw tensor ({path!r})", where)
        if f"{folder}/{path}" not in contents:
            raise ValueError(f"{source}: {where} names {path!r}, which the archive lacks.")


def _check_program(node: Any, inner: str, source: str) -> None:
    """Walk the serialized program: operators, expressions, guards and custom objects."""
    if isinstance(node, list):
        for item in node:
            _check_program(item, inner, source)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("as_custom_obj", "custom_obj", "custom_obj_values") and value:
            raise _refuse(source, "a custom object", inner)
        if key in ("target", "as_operator") and isinstance(value, str):
            _check_operator(value, inner, source)
        elif key == "expr_str":
            _check_expression(value, inner, source)
        elif key == "guards_code" and value:
            raise _refuse(source, "guard code (Python source)", inner)
        elif key == "range_constraints" and isinstance(value, dict):
            for symbol in value:
                if not _SYMBOL.fullmatch(str(symbol)):
                    raise _refuse(source, f"a symbol named {str(symbol)[:60]!r}", inner)
        _check_program(value, inner, source)


def _check_operator(target: str, inner: str, source: str) -> None:
    if not (_ATEN.fullmatch(target) or target in _PYTHON_OPERATORS):
        raise _refuse(source, f"the operator {target[:80]!r}, not an ATen operator", inner)


def _check_expression(text: Any, inner: str, source: str) -> None:
    """Only numbers, symbol names and sympy's constructors: what ``sympify`` may ``eval``."""
    if not isinstance(text, str) or len(text) > 10_000:
        raise _refuse(source, "a symbolic expression of an unknown shape", inner)
    position = 0
    while position < len(text):
        token = _EXPRESSION_TOKEN.match(text, position)
        if token is None:
            raise _refuse(source, f"the symbolic expression {text[:80]!r}", inner)
        name, quoted = token.group("name"), token.group("quoted")
        if (name is not None and name not in _SYMPY_NAMES and not _SYMBOL.fullmatch(name)) or (
            quoted is not None and not _SYMBOL.fullmatch(quoted)
        ):
            raise _refuse(source, f"the symbolic expression {text[:80]!r}", inner)
        position = token.end()


class ExportedModule(nn.Module):
    """A ``torch.export`` program as a module. Its train/eval behaviour was fixed when it was
    exported, so ``train()`` and ``eval()`` only set the flag (the program itself refuses them).
    """

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self


def load_exported(data: bytes, source: str) -> tuple[ExportedModule, bytes]:
    """The module of a checked ``torch.export`` archive, ready to be called on a batch, and the
    canonical bytes it was loaded from (what a checkpoint should keep)."""
    canonical = safe_archive(data, source)
    try:
        program = torch.export.load(io.BytesIO(canonical))
    except Exception as error:
        raise ValueError(f"{source}: torch.export.load failed ({error}).") from None
    return ExportedModule(program.module()), canonical


def read_exported(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a ``.pt2`` file (``load_exported`` checks them before torch opens them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--model {str(path)!r} does not exist.")
    size = path.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise ValueError(
            f"--model {path}: {size:,} bytes, more than the {MAX_ARCHIVE_BYTES:,} a model "
            "archive may hold."
        )
    return path.read_bytes()


def exported_tensor(data: bytes) -> torch.Tensor:
    """The archive's bytes as a uint8 tensor, so a safetensors checkpoint can carry them."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()
