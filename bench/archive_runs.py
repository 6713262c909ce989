"""Keep the small files of finished runs beside docs/results.md, so that a lost machine loses only unfinished runs.

Copies, for every run folder under SOURCE that finished (its ``result.json`` written by
``ldwseg compare``, ``sweep`` or ``ablate``), its ``metrics.csv``, ``config.yaml``,
``environment.json`` and ``result.json`` to the same relative path under DEST, and the
command-level files (``summary.json``, ``compare.csv``, ``cost.json``, ``sweep.csv``, and the
stages' copies ``summary-STAGE.json`` and ``compare-STAGE.csv``) as they are. Weights and training states stay behind: every table of docs/results.md is recomputed
from these files (``ldwseg compare`` reads finished runs' ``metrics.csv``).

Usage: ``python bench/archive_runs.py runs/converged-camvid docs/evidence/converged-camvid``
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

RUN_FILES = ("metrics.csv", "config.yaml", "environment.json", "result.json")
SUMMARY_FILES = ("summary.json", "compare.csv", "cost.json", "sweep.csv")


def _stage_summary(name: str) -> bool:
    """A stage's copy of a summary (``summary-primary.json``, ``compare-primary.csv``: bench/converged.py)."""
    return (name.startswith("summary-") and name.endswith(".json")) or (
        name.startswith("compare-") and name.endswith(".csv")
    )


def archive(source: Path, dest: Path) -> list[Path]:
    """Copy the small files (see the module docstring); the files written, relative to ``dest``."""
    written = []
    for path in sorted(source.rglob("*")):
        finished = path.name in RUN_FILES and (path.parent / "result.json").is_file()
        if path.is_file() and (finished or path.name in SUMMARY_FILES or _stage_summary(path.name)):
            target = dest / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            written.append(target.relative_to(dest))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="A compare/sweep output folder.")
    parser.add_argument("dest", type=Path, help="Where to keep its small files (under docs/evidence/).")
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"error: {args.source} is not a folder; give an ldwseg compare or sweep --out folder")
    written = archive(args.source, args.dest)
    print(f"kept {len(written)} files of {args.source} in {args.dest}")


if __name__ == "__main__":
    main()
