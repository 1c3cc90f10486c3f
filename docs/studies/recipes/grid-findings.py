"""Print the numbers a seed-000 §2 findings table quotes, from a finished grid store.

    .venv/bin/python docs/studies/recipes/grid-findings.py docs/studies/seed000-s2-fashion
    .venv/bin/python docs/studies/recipes/grid-findings.py runs/seed000-s2-mnist

Reads a findings page's grid.csv, or a run folder's grid-*.sqlite (read-only), and prints, per norm: mean accuracy per eps, per n
and per eta (each a mean over the rest of the grid), the random start against the
deterministic one and MSE against CE in paired settings (everything else equal), the top 10 at
the seed's fixed radius (8/255 Linf, 4 sqrt(p)/255 L2), and PGD 8 x 2/255 from x with each loss.
L2 radii are matched to Linf ones by rank (eps_2 = sqrt(p) eps_inf in the seed files).
"""

from __future__ import annotations

import csv
import glob
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

COLUMNS = "param_norm, param_eps, param_step, param_steps, param_loss, param_random_start, accuracy"


def load(run: str) -> list[dict]:
    """The grid's rows: a findings page's ``grid.csv`` (the records kept in the tree), or the
    ``grid-*.sqlite`` store of a run folder."""
    if Path(run, "grid.csv").is_file():
        with open(Path(run, "grid.csv"), newline="") as handle:
            rows = [
                {
                    **r,
                    "eps": float(r["eps"]),
                    "step": float(r["step"]),
                    "steps": int(r["steps"]),
                    "random_start": int(r["random_start"]),
                    "accuracy": float(r["accuracy"]),
                }
                for r in csv.DictReader(handle)
            ]
    else:
        stores = glob.glob(f"{run}/grid-*.sqlite")
        if len(stores) != 1:
            sys.exit(f"expected grid.csv or one grid-*.sqlite in {run}, found neither")
        connection = sqlite3.connect(f"file:{stores[0]}?mode=ro", uri=True)
        names = [c.strip().removeprefix("param_") for c in COLUMNS.split(",")]
        rows = [dict(zip(names, r)) for r in connection.execute(f"select {COLUMNS} from results")]
    for norm in ("linf", "l2"):  # radius and step index 1..9 (in 1/255 on the Linf scale)
        part = [r for r in rows if r["norm"] == norm]
        for field in ("eps", "step"):
            rank = {v: i + 1 for i, v in enumerate(sorted({r[field] for r in part}))}
            for r in part:
                r[field + "_k"] = rank[r[field]]
    return rows


def by(rows: list[dict], field: str) -> str:
    groups: dict = defaultdict(list)
    for r in rows:
        groups[r[field]].append(r["accuracy"])
    return "  ".join(f"{k}:{100 * mean(v):.1f}" for k, v in sorted(groups.items()))


def paired(rows: list[dict], field: str, a, b, split: str | None = None) -> None:
    """Wins of setting ``a`` over ``b`` of ``field`` (lower accuracy wins), all else equal."""
    rest = [k for k in ("eps_k", "step_k", "steps", "loss", "random_start") if k != field]
    table = {(tuple(r[k] for k in rest), r[field]): r["accuracy"] for r in rows}
    groups: dict = defaultdict(lambda: [0, 0, 0, []])
    for (key, value), accuracy in table.items():
        if value != a or (key, b) not in table:
            continue
        other = table[(key, b)]
        group = groups[dict(zip(rest, key))[split] if split else "every setting given"]
        group[0 if accuracy < other else 1 if accuracy > other else 2] += 1
        group[3].append(100 * (other - accuracy))
    for name, (wins, losses, ties, gains) in sorted(groups.items()):
        print(
            f"    {field} {a} vs {b} [{split or ''} {name}]: {a} wins {wins}, loses {losses}, "
            f"ties {ties}, mean gain {mean(gains):+.2f} pts"
        )


def main(run: str) -> None:
    rows = load(run)
    for norm in ("linf", "l2"):
        part = [r for r in rows if r["norm"] == norm]
        print(f"== {norm}: {len(part)} settings")
        print("  accuracy by eps (k/255):", by(part, "eps_k"))
        print("  accuracy by n:          ", by(part, "steps"))
        print("  accuracy by eta (k/255):", by(part, "step_k"))
        top = [r for r in part if r["eps_k"] == (8 if norm == "linf" else 4)]
        paired(top, "random_start", 1, 0)  # at the fixed radius only
        paired(part, "random_start", 1, 0, split="eps_k")
        paired(part, "loss", "mse", "ce")
        paired(part, "loss", "mse", "ce", split="step_k")
        print("  top 10 at the fixed radius:")
        for r in sorted(top, key=lambda r: r["accuracy"])[:10]:
            print(
                f"    {100 * r['accuracy']:.1f}%  eta {r['step_k']}/255  n {r['steps']}  "
                f"{r['loss']}  {'omega_rand' if r['random_start'] else 'omega_0'}"
            )
        for loss in ("ce", "mse"):
            hit = [
                r
                for r in top
                if (r["steps"], r["step_k"], r["loss"], r["random_start"]) == (8, 2, loss, 0)
            ]
            for r in hit:
                print(f"  PGD 8 x 2/255 from x, {loss}: {100 * r['accuracy']:.1f}%")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/seed000-s2-mnist")
