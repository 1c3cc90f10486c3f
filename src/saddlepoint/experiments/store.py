"""The results store: one SQLite database per experiment, one row per configuration.

Parameters and metrics are columns (added as they appear); each row is written in its own
transaction, so an interrupted sweep keeps every finished row and never a half-written one.
Beside its configuration each row records ``inputs``: a digest of what else determines it (the
checkpoint's bytes, the data selection, the attack's revision), so a row whose checkpoint was
retrained or whose data changed is stale, not done.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from saddlepoint.fileio import open_sqlite, open_sqlite_readonly, storage_error


def config_key(config: dict[str, Any]) -> str:
    """A stable identity for a configuration (its parameters, sorted, as JSON)."""
    return json.dumps(config, sort_keys=True, default=str)


class ResultsStore:
    """Rows of results in ``path`` (created if missing; with ``readonly``, an existing store is
    opened for reading only, so a read-only or immutable store can still be listed)."""

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            self.connection = open_sqlite_readonly(self.path, "results store")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = open_sqlite(
            self.path,
            "results store",
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, config TEXT NOT NULL);",
        )
        if "inputs" not in self.columns():  # stores written before rows recorded their inputs
            self.connection.execute("ALTER TABLE results ADD COLUMN inputs TEXT")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def columns(self) -> list[str]:
        return [row[1] for row in self.connection.execute("PRAGMA table_info(results)")]

    def done(self) -> dict[str, str | None]:
        """Every stored configuration key with the inputs digest its row was computed from
        (None for rows of older stores, which recorded none); one query."""
        return dict(self.connection.execute("SELECT key, inputs FROM results").fetchall())

    def add(
        self, config: dict[str, Any], metrics: dict[str, Any], inputs: str | None = None
    ) -> None:
        """Insert (or replace) one configuration's row in its own transaction."""
        values = {**{f"param_{k}": v for k, v in config.items()}, **metrics, "inputs": inputs}
        values = {
            k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in values.items()
        }
        existing = set(self.columns())
        cursor = self.connection
        cursor.execute("BEGIN IMMEDIATE")
        try:
            for column in values:
                if column not in existing:
                    cursor.execute(f'ALTER TABLE results ADD COLUMN "{column}"')
            names = ["key", "config", *values]
            placeholders = ", ".join("?" for _ in names)
            quoted = ", ".join(f'"{n}"' for n in names)
            cursor.execute(
                f"INSERT OR REPLACE INTO results ({quoted}) VALUES ({placeholders})",
                [
                    config_key(config),
                    json.dumps(config, sort_keys=True, default=str),
                    *values.values(),
                ],
            )
            cursor.execute("COMMIT")
        except sqlite3.OperationalError as error:
            cursor.execute("ROLLBACK")
            raise storage_error(self.path, error) from None
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    def rows(self, current: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every row, or only the current ones: those whose key is in ``current`` and whose
        inputs digest is the one ``current`` gives for it."""
        cursor = self.connection.execute("SELECT * FROM results ORDER BY key")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        if current is None:
            return rows
        return [row for row in rows if current.get(row["key"], "") == row["inputs"]]

    def dataframe(self):
        """All rows as a pandas DataFrame (pandas is optional)."""
        import pandas as pd

        return pd.DataFrame(self.rows())
