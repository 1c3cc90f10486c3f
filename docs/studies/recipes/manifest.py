"""Write a findings page's models.json: every model a run trained, its recipe and its SHA-256.

The weights stay out of the repository; the manifest says what a re-run of the seed file must
produce (training is deterministic on the CPU at one thread count, on one machine and one code version): for each model of the run
folder, its name, architecture and arguments, the data it saw, the recipe the study engine keyed
it by (from the run's cache), and the digest and size of its file.

Usage: .venv/bin/python docs/studies/recipes/manifest.py runs/RUN docs/studies/RUN/models.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from saddlepoint.fileio import content_digest, write_text


def recipes(run: Path) -> dict[str, dict]:
    """Model name -> the arguments and inputs its training task was keyed by."""
    found = {}
    for kind in ("train_from_recipe", "finetune_from"):
        for entry in sorted((run / "cache" / kind).glob("*.json")):
            made = json.loads(entry.read_text())["made_from"]
            arguments = {k: v for k, v in made["arguments"].items() if k != "resume_tag"}
            found[arguments.pop("name")] = {**arguments, "inputs": made["inputs"]}
    return found


def manifest(run: Path, name: str) -> dict:
    known = recipes(run)
    models = []
    for weights in sorted((run / "models").glob("*.safetensors")):
        meta = json.loads(weights.with_suffix(".json").read_text())
        recipe = known.get(weights.stem, {})
        models.append(
            {
                "name": weights.stem,
                "model": meta["model"],
                "dataset": meta["dataset"],
                "seed": meta.get("train", {}).get("seed"),
                "recipe": recipe,
                "sha256": content_digest(weights),
                "bytes": weights.stat().st_size,
            }
        )
    return {"run": name, "models": models}


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    record = manifest(run, out.parent.name)  # the page's name
    write_text(out, json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"{out}: {len(record['models'])} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
