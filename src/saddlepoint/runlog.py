"""The run log: what a study or the demo produced, in one SQLite file the report reads.

A run folder holds ``run.sqlite`` and the figure files it names. Each section (one part of a study:
"white-box attacks", "transfer over depth") is committed in one transaction together with its
text, tables and figures once it is complete, so an interrupted run keeps every finished section,
and a re-run skips them (``done``). The report only reads this file and the figures it lists.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saddlepoint.fileio import open_sqlite, open_sqlite_readonly, storage_error

RUN_FILE = "run.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sections (
    key TEXT PRIMARY KEY, position INTEGER, title TEXT, text TEXT, params TEXT, seconds REAL
);
CREATE TABLE IF NOT EXISTS tables (
    section TEXT, position INTEGER, name TEXT, caption TEXT, columns TEXT, rows TEXT
);
CREATE TABLE IF NOT EXISTS figures (section TEXT, position INTEGER, path TEXT, caption TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass
class Table:
    """Rows under named columns, with a caption; values are numbers or strings."""

    name: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""

    @classmethod
    def of(
        cls, name: str, columns: Sequence[str], records: Sequence[dict[str, Any]], caption: str = ""
    ) -> Table:
        """A table of ``records`` (mappings by column name), with ``columns`` in this order; a
        record lacking a column is a KeyError naming it."""
        rows = []
        for record in records:
            missing = [c for c in columns if c not in record]
            if missing:
                raise KeyError(f"table {name!r}: a record has no column {missing[0]!r}.")
            rows.append([record[c] for c in columns])
        return cls(name, list(columns), rows, caption)

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


@dataclass
class Section:
    """One finished part of a run: a title, a short text with the setup and numbers, tables and
    figures (paths relative to the run folder)."""

    key: str
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (path, caption)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"Section {self.key!r} has no table {name!r}.")


class RunLog:
    """The sections of one run folder (created if missing; with ``readonly``, an existing run
    is opened for reading only, so a read-only folder can still be reported)."""

    def __init__(self, folder: str | os.PathLike[str], readonly: bool = False) -> None:
        self.folder = Path(folder)
        if readonly:
            self.connection = open_sqlite_readonly(self.folder / RUN_FILE, "run log")
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.connection = open_sqlite(self.folder / RUN_FILE, "run log", _SCHEMA)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def figure_path(self, name: str) -> Path:
        """Where a figure called ``name`` goes (the ``figures/`` subfolder)."""
        path = self.folder / "figures" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def done(self, key: str, params: dict[str, Any] | None = None) -> bool:
        """Whether section ``key`` is recorded (with the same ``params``, when given)."""
        stored = self.params(key)
        if stored is None:
            return False
        return params is None or stored == json.loads(json.dumps(params, default=str))

    def params(self, key: str) -> dict[str, Any] | None:
        """The parameters section ``key`` was recorded with, or None when it is not recorded."""
        row = self.connection.execute(
            "SELECT params FROM sections WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_meta(self, key: str, value: Any) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str))
        )

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.connection.execute("SELECT * FROM meta")}

    def add(self, section: Section) -> None:
        """Record ``section`` (replacing an older one of the same key) in one transaction."""
        for path, _ in section.figures:
            if not (self.folder / path).is_file():
                raise FileNotFoundError(f"Section {section.key!r} names a missing figure {path}.")
        db = self.connection
        db.execute("BEGIN IMMEDIATE")
        try:
            old = db.execute("SELECT position FROM sections WHERE key = ?", (section.key,))
            row = old.fetchone()
            if row is None:
                row = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM sections").fetchone()
            for name in ("sections", "tables", "figures"):
                column = "key" if name == "sections" else "section"
                db.execute(f"DELETE FROM {name} WHERE {column} = ?", (section.key,))
            db.execute(
                "INSERT INTO sections VALUES (?, ?, ?, ?, ?, ?)",
                (
                    section.key,
                    row[0],
                    section.title,
                    section.text,
                    json.dumps(section.params, default=str),
                    section.seconds,
                ),
            )
            for i, table in enumerate(section.tables):
                db.execute(
                    "INSERT INTO tables VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        section.key,
                        i,
                        table.name,
                        table.caption,
                        json.dumps(table.columns),
                        json.dumps(table.rows, default=_plain),
                    ),
                )
            for i, (path, caption) in enumerate(section.figures):
                db.execute(
                    "INSERT INTO figures VALUES (?, ?, ?, ?)", (section.key, i, path, caption)
                )
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            db.execute("ROLLBACK")
            raise storage_error(self.folder / RUN_FILE, error) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def sections(self) -> list[Section]:
        """Every recorded section, in the order they were first recorded."""
        db = self.connection
        out = []
        query = "SELECT key, title, text, params, seconds FROM sections ORDER BY position"
        for key, title, text, params, seconds in db.execute(query).fetchall():
            tables = [
                Table(name, json.loads(columns), json.loads(rows), caption)
                for name, caption, columns, rows in db.execute(
                    "SELECT name, caption, columns, rows FROM tables WHERE section = ? "
                    "ORDER BY position",
                    (key,),
                )
            ]
            figures = list(
                db.execute(
                    "SELECT path, caption FROM figures WHERE section = ? ORDER BY position", (key,)
                )
            )
            out.append(
                Section(
                    key,
                    title,
                    text,
                    tables,
                    [tuple(f) for f in figures],
                    json.loads(params),
                    seconds,
                )
            )
        return out

    def section(self, key: str) -> Section:
        for section in self.sections():
            if section.key == key:
                return section
        raise KeyError(f"No section {key!r} in {self.folder / RUN_FILE}.")


def _plain(value: Any) -> Any:
    """JSON for tensors and numpy scalars in table cells."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Sequence):
        return list(value)
    return str(value)
