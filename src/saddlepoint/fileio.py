"""Files: atomic writes (a temporary file in the same folder, then a rename), SQLite files that
fail clearly when damaged, and YAML that refuses duplicate keys and aliases.

A reader never sees half a file, and an interrupted write leaves the old file (or nothing).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

# Errors of the storage itself (a full disk or quota, a read-only or failing device): raised by
# a write without the file's name, they are the temporary file's, and name the target.
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as error:  # name the user's path, not a temporary one
        raise OSError(error.errno, f"cannot write {target}: {error.strerror}") from None
    os.close(handle)
    temp_path = Path(temp)
    try:
        try:
            yield temp_path
        except OSError as error:
            storage = error.filename is None and error.errno in _STORAGE_ERRORS
            if error.filename not in (str(temp_path), temp_path) and not storage:
                raise  # the caller's own error (a failed download, say): keep it as it is
            raise OSError(error.errno, f"cannot write {target}: {error.strerror}") from None
        try:
            # mkstemp makes the file private (0600); give it the permissions open() would.
            os.chmod(temp_path, 0o666 & ~_umask())
            os.replace(temp_path, target)
        except OSError as error:
            raise OSError(error.errno, f"cannot write {target}: {error.strerror}") from None
    finally:
        if temp_path.exists():
            temp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` only when the block succeeds."""
    with atomic_path(path) as temp, open(temp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically. Serializers that write files through their own
    C or Rust code (torch.save, safetensors) report a full disk in their own words, without the
    path: serialize to bytes first, then write them here, where it is an OSError naming it."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def storage_error(path: str | os.PathLike[str], error: sqlite3.Error) -> Exception:
    """An SQLite failure as an error naming ``path``: a full disk or a read-only folder is an
    OSError saying so (not "not a readable file"), anything else a ValueError."""
    text = str(error)
    if any(
        cause in text
        for cause in ("disk is full", "disk I/O error", "readonly database", "unable to open")
    ):
        return OSError(
            f"cannot write {path}: {text} (is the disk full, or the folder read-only?); what "
            "was stored before is kept."
        )
    return ValueError(f"{path}: SQLite failed ({text}).")


def content_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, in hex: what a result computed from the file depends on."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def open_sqlite(path: str | os.PathLike[str], what: str, schema: str) -> sqlite3.Connection:
    """Open (or create) the SQLite file at ``path`` in autocommit and WAL mode with ``schema``;
    a file that is not an SQLite database, or is damaged, is a ValueError naming it."""
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=60)
    except sqlite3.Error as error:
        raise storage_error(path, error) from None
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(schema)
        # A store that opens but refuses writes (an immutable file) must fail now, before the
        # work whose results it would refuse: a write that is rolled back at once.
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("CREATE TABLE _write_probe (x)")
        connection.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        connection.close()
        raise storage_error(path, error) from None
    except sqlite3.DatabaseError as error:
        connection.close()
        raise ValueError(
            f"{path} is not a readable {what} (SQLite: {error}); move it aside or pick another "
            "path."
        ) from None
    return connection


def open_sqlite_readonly(path: str | os.PathLike[str], what: str) -> sqlite3.Connection:
    """Open an existing SQLite file for reading only: a read-only folder or file (where WAL
    mode cannot create its side files) is read as an immutable snapshot; a damaged or foreign
    file is a ValueError naming it."""
    resolved = Path(path).resolve()
    last: sqlite3.Error | None = None
    for options in ("mode=ro", "mode=ro&immutable=1"):
        connection = sqlite3.connect(f"{resolved.as_uri()}?{options}", uri=True)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return connection
        except sqlite3.DatabaseError as error:
            connection.close()
            last = error
    raise ValueError(f"{path} is not a readable {what} (SQLite: {last}).")


MAX_YAML_BYTES = 1 << 20  # a configuration file, not a dataset


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (it kept the last) and
    aliases (``*name``): a few hundred bytes of nested aliases expand to billions of nodes
    once the document is walked."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases (*{event.anchor}) are not allowed; write the values out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The safe-loaded content of the YAML file at ``path``; a key given twice in one mapping
    and malformed YAML are ValueErrors naming the file and the line."""
    size = Path(path).stat().st_size
    if size > MAX_YAML_BYTES:
        raise ValueError(
            f"{path} is {size:,} bytes; a configuration file may hold at most {MAX_YAML_BYTES:,}."
        )
    try:
        return yaml.load(Path(path).read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - safe
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(p) for p in (error.context, error.problem) if p)
        raise ValueError(f"{path} is not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None


class Busy(RuntimeError):
    """Another process holds the lock on a folder."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (its ``.lock`` file) for the block, or raise Busy
    at once, naming the process that holds it: two writers would interleave their writes. The
    lock goes with the process (a killed driver never leaves it held)."""
    import fcntl

    path = Path(folder) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise Busy(
                f"{what} {folder} is in use by {holder}: wait for it to finish or stop it "
                "(two processes writing one run would interleave their writes)."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {os.uname().nodename}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
