import pytest

from saddlepoint.fileio import atomic_open
from saddlepoint.validation import check_choice, check_keywords, check_number


def test_number_errors_name_owner_argument_range_and_value():
    with pytest.raises(ValueError) as info:
        check_number("PGD", "eps", -1, low=0, low_open=True)
    assert (
        str(info.value)
        == "The 'eps' parameter of PGD must be a float in the range (0, inf]. Got -1 instead."
    )
    with pytest.raises(TypeError, match="must be an int"):
        check_number("PGD", "steps", 2.5, low=1, integer=True)
    with pytest.raises(TypeError):
        check_number("PGD", "eps", True)


def test_choice_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'linf'"):
        check_choice("PGD", "norm", "lnf", ["linf", "l2"])


def test_unknown_keywords_are_type_errors():
    with pytest.raises(TypeError, match="'stpes'.*Did you mean 'steps'"):
        check_keywords("PGD", {"stpes": 3}, ["steps", "eps"])


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("new")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "g.txt") as handle:
            handle.write("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "g.txt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("register", "registry", "name", "args"),
    [
        ("saddlepoint.attacks.registry:register_attack", "ATTACKS", "pgd", ({},)),
        ("saddlepoint.models.registry:register_model", "MODELS", "cnn", ({},)),
        ("saddlepoint.data.registry:register_dataset", "DATASETS", "digits", ("x",)),
        ("saddlepoint.experiments.studies:register_study", "STUDIES", "transfer", ()),
    ],
)
def test_a_registered_name_is_never_silently_replaced(register, registry, name, args):
    import importlib

    module_name, function = register.split(":")
    module = importlib.import_module(module_name)
    entries = getattr(module, registry)
    before = entries[name]
    with pytest.raises(ValueError, match=f"named '{name}' is already registered"):
        getattr(module, function)(name, lambda **kw: None, *args)
    assert entries[name] is before
