"""The converged evidence of docs/results.md, stage by stage, as pre-registered there.

    python bench/converged.py                       # every stage in order, going on where it stopped
    python bench/converged.py primary secondary     # some stages
    python bench/converged.py --print               # the commands only
    python bench/converged.py primary --report      # the finished seeds' tables, training nothing

The stages, each one ``ldwseg compare`` or ``ldwseg sweep`` that keeps its finished runs and
resumes an unfinished one, so this script may run over several sessions (one training at a
time):

* ``primary``: max pooling / transposed conv against the default design on CamVid, seeds 0-4;
* ``drive``: the primary pair on DRIVE, vessel Dice, seeds 0-4 (before the exploratory
  stages: it is the second pre-registered decision);
* ``secondary``: on the CamVid folder, seeds 0-2, Holm-corrected together: the default against
  its space-to-depth twin, the paper-literal LDW-UNet against max pooling, learned against
  fixed filters (the max and default runs of seeds 0-2 are the primary's, read back);
* ``knob``: the constraint weight of the default design under the soft orthogonal
  constraint, one seed per weight (a curve, not a claim).

The two decisions (``primary`` and ``drive``) follow the pre-registered rule to its end:
when a stage's 5 seeds finish with neither a gain nor "no gain of 1 point or more" (the
equivalence test), seeds 5, 6 and 7 are added on the same folder and the rule is applied
once at 8 seeds. The 5-seed decision is read with ``ldwseg compare ... --report --json``.

``--camvid`` and ``--drive`` name the data sets' folders (default: the shared samples beside
this repository); ``--out`` the folder of the runs (default ``runs``). ``--keep DIR`` copies the
small files of every finished run (``bench/archive_runs.py``: metrics, config, environment,
summaries; no weights) to ``DIR`` every minute while a stage runs and when it ends, so that a
lost machine loses only the run in progress::

    python bench/converged.py --keep docs/evidence
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CAMVID_CONFIG, DRIVE_CONFIG = "configs/camvid_converged.yaml", "configs/drive_converged.yaml"
THIN = "pole,signsymbol,pedestrian,bicyclist,fence"
SEEDS, EXTENDED_SEEDS = "0,1,2,3,4", "0,1,2,3,4,5,6,7"
EXTENDED = ("primary", "drive")
"""The stages whose decision is pre-registered, extended to 8 seeds when 5 do not decide."""
DECIDED = ("gain", "equivalent")
"""The decisions that end a stage at 5 seeds; "loss" and "inconclusive" are the rule's "otherwise"."""

MAX = "max: model.down=maxpool model.up=deconv"
DEFAULT = "default: "
SPD = "spd-efficient: model.down=spd-efficient model.up=shuffle"
PAPER = "paper: model.down=ldw model.up=ldw model.wavelet=haar model.constraint=orthogonal model.attention=true"
FIXED = "fixed: model.learn_filters=false"


def _variants(*specs: str) -> list[str]:
    return [arg for spec in specs for arg in ("--variant", spec)]


def stages(camvid: Path, drive: Path, out: Path) -> dict[str, list[str]]:
    """The ``ldwseg`` arguments of every stage, in the order they run."""
    camvid_runs = ["--config", CAMVID_CONFIG, "--data-root", str(camvid), "--epochs", "200"]
    return {
        "primary": [
            "compare", *camvid_runs, "--seeds", SEEDS, "--out", str(out / "converged-camvid"),
            *_variants(MAX, DEFAULT), "--pair", "max,default", "--margin", "0.01", "--classes", THIN,
        ],
        "drive": [
            "compare", "--config", DRIVE_CONFIG, "--data-root", str(drive), "--metric", "dice",
            "--seeds", SEEDS, "--out", str(out / "converged-drive"), *_variants(MAX, DEFAULT),
            "--pair", "max,default", "--margin", "0.01",
        ],
        "secondary": [
            "compare", *camvid_runs, "--seeds", "0,1,2", "--out", str(out / "converged-camvid"),
            *_variants(MAX, DEFAULT, SPD, PAPER, FIXED), "--pair", "spd-efficient,default", "--pair", "max,paper",
            "--pair", "fixed,default", "--no-primary", "--margin", "0.01", "--classes", THIN,
        ],
        "knob": [
            "sweep", *camvid_runs, "--constraint", "orthogonal", "--wavelet-weights", "0,0.01,0.1,1,10",
            "--out", str(out / "converged-knob"),
        ],
    }  # fmt: skip


def extended(command: list[str]) -> list[str]:
    """``command`` with seeds 0-7 instead of 0-4."""
    index = command.index("--seeds") + 1
    return [*command[:index], EXTENDED_SEEDS, *command[index + 1 :]]


def decision(command: list[str]) -> str | None:
    """The primary pair's decision of a compare stage's 5 seeds, ``None`` while any of them is unfinished."""
    result = subprocess.run(
        [sys.executable, "-m", "ldwseg", *command, "--report", "--json"], capture_output=True, text=True
    )
    if result.returncode != 0:
        return None
    summary = json.loads(result.stdout)
    if summary.get("seeds") != summary.get("planned_seeds", summary.get("seeds")):
        return None
    return summary["pairs"][0]["decision"]


KEEP_EVERY = 60.0
"""Seconds between two copies of a running stage's finished runs (``--keep``)."""


def keep_finished(folder: Path, dest: Path) -> None:
    """Copy the small files of ``folder``'s finished runs to ``dest/<folder name>`` (bench/archive_runs.py)."""
    spec = importlib.util.spec_from_file_location("archive_runs", Path(__file__).with_name("archive_runs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if folder.is_dir():
        module.archive(folder, dest / folder.name)


@contextlib.contextmanager
def keeping(folder: Path, dest: Path | None) -> Iterator[None]:
    """While the block runs, :func:`keep_finished` every :data:`KEEP_EVERY` seconds, and once at its end."""
    if dest is None:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(KEEP_EVERY):
            keep_finished(folder, dest)

    thread = threading.Thread(target=loop, name="keep-finished-runs", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        keep_finished(folder, dest)


def _run(name: str, command: list[str], *, report: bool) -> int:
    print(f"== {name}: {shlex.join(['ldwseg', *command])}", flush=True)
    code = subprocess.call([sys.executable, "-m", "ldwseg", *command])
    if code != 0 and not report:  # a report of a stage without finished seeds fails alone
        print(f"== {name} stopped with exit status {code}; run this script again to go on", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", nargs="*", help="primary, drive, secondary, knob [default: all, in that order]")
    parser.add_argument("--camvid", type=Path, default=SHARED / "camvid", help="CamVid (SegNet version) folder")
    parser.add_argument("--drive", type=Path, default=SHARED / "drive", help="DRIVE folder")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="folder of the runs")
    parser.add_argument("--print", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--report", action="store_true", help="the compare stages' tables of finished seeds only")
    parser.add_argument("--keep", type=Path, help="copy the finished runs' small files there (e.g. docs/evidence)")
    args = parser.parse_args(argv)
    table = stages(args.camvid, args.drive, args.out)
    unknown = [s for s in args.stage if s not in table]
    if unknown:
        parser.error(f"unknown stage {', '.join(unknown)}; choose from {', '.join(table)}")
    for name in args.stage or list(table):
        command = table[name]
        if args.print:
            print(shlex.join(["ldwseg", *command, *(["--report"] if args.report else [])]))
            if name in EXTENDED and not args.report:
                print(
                    f"# only if the 5 seeds decide neither gain nor no gain: {shlex.join(['ldwseg', *extended(command)])}"
                )
            continue
        if args.report:
            if command[0] == "compare":
                _run(name, [*command, "--report"], report=True)
                if name in EXTENDED and any(Path(command[command.index("--out") + 1]).glob("*/seed5")):
                    _run(f"{name}, 8 seeds", [*extended(command), "--report"], report=True)
            continue
        folder = Path(command[command.index("--out") + 1])
        with keeping(folder, args.keep):
            code = _run(name, command, report=False)
            if code == 0 and name in EXTENDED:
                decided = decision(command)
                if decided is None:  # all 5 seeds have finished, so the report itself failed: never guess
                    print(f"== {name}: the 5-seed decision could not be read; see the same command with --report",
                          file=sys.stderr)  # fmt: skip
                    return 1
                if decided not in DECIDED:
                    print(
                        f"== {name}: 5 seeds decide {decided}: seeds 5, 6, 7 are added, as pre-registered", flush=True
                    )
                    code = _run(f"{name}, 8 seeds", extended(command), report=False)
            if code == 0 and command[0] == "compare":
                keep_summary(name, folder)
        if code != 0:
            return code
    return 0


def keep_summary(stage: str, folder: Path) -> None:
    """Copy a finished compare stage's ``summary.json`` and ``compare.csv`` to ``summary-STAGE.json`` and
    ``compare-STAGE.csv``: the secondary stage writes its own into the primary's folder."""
    for name, kept in (("summary.json", f"summary-{stage}.json"), ("compare.csv", f"compare-{stage}.csv")):
        if (folder / name).is_file():
            shutil.copy2(folder / name, folder / kept)


if __name__ == "__main__":
    sys.exit(main())
