"""The results store: one SQLite database per experiment, one row per configuration.

Parameters and metrics are columns (added as they appear); each row is written in its own
transaction, so an interrupted sweep keeps every finished row and never a half-written one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from saddlepoint.fileio import open_sqlite


def config_key(config: dict[str, Any]) -> str:
    """A stable identity for a configuration (its parameters, sorted, as JSON)."""
    return json.dumps(config, sort_keys=True, default=str)


class ResultsStore:
    """Rows of results in ``path`` (created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = open_sqlite(
            self.path,
            "results store",
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, config TEXT NOT NULL);",
        )

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def columns(self) -> list[str]:
        return [row[1] for row in self.connection.execute("PRAGMA table_info(results)")]

    def done(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT key FROM results")}

    def add(self, config: dict[str, Any], metrics: dict[str, Any]) -> None:
        """Insert one configuration's row in its own transaction."""
        values = {**{f"param_{k}": v for k, v in config.items()}, **metrics}
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
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    def rows(self, keys: set[str] | None = None) -> list[dict[str, Any]]:
        """Every row, or only those whose configuration key is in ``keys``."""
        cursor = self.connection.execute("SELECT * FROM results ORDER BY key")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        return rows if keys is None else [row for row in rows if row["key"] in keys]

    def dataframe(self):
        """All rows as a pandas DataFrame (pandas is optional)."""
        import pandas as pd

        return pd.DataFrame(self.rows())
