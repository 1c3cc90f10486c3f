"""Atomic writes name the user's path on failure; YAML refuses duplicate keys."""

import pytest

from saddlepoint.fileio import read_yaml, write_text


def test_a_failed_write_names_the_target_not_a_temporary_file(tmp_path):
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "out.json"
    with pytest.raises(OSError, match=f"cannot write {target}") as info:
        write_text(target, "{}")
    assert ".part" not in str(info.value)


def test_read_yaml_refuses_duplicate_keys_with_the_line(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\nb:\n  c: 2\n  c: 3\n")
    with pytest.raises(ValueError, match=r"line 4, column 3: .*the key 'c' is given twice"):
        read_yaml(path)
    path.write_text("a: 1\nb: [2, 3]\n")
    assert read_yaml(path) == {"a": 1, "b": [2, 3]}
