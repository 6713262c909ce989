"""The trade-off map: one short run per constraint weight, then what each run bought.

For every ``(constraint, wavelet_weight)`` pair, :func:`run_sweep` trains a run with that
setting and records

* the task metric of its best checkpoint (val mIoU or autoencoder PSNR),
* the round-trip PSNR of its learned pools alone (each pool with its paired reverse
  pool on the validation images, the worst pool reported),
* its constraint loss (as trained, and the paper's Eqs. 9-13 for comparison) and the
  largest PR error of its filters.

It writes ``sweep.csv`` and ``sweep.png``. The same machinery runs the paper's ablations
(:data:`ABLATIONS`): table 3 (LDW with and without energy attention, and max pooling) and
table 6 ("pretrained", i.e. constraint-satisfying initial filters, on/off x L_wavelet
on/off). Table 3 has three runs, not four: the energy attention gates the four subbands
of an LDW pool (Eqs. 16-17), and max pooling leaves one band, so "max pooling with
attention" does not exist.

Each run trains into its own folder (:func:`~ldwseg.analysis.runs.train_labelled`): run again with the same
arguments, a finished run is kept, an unfinished one resumed, and a folder holding a run
of other settings refused. Its log lines start with its label (:func:`~ldwseg.engine.logs.log_label`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ..config import Config, apply_overrides
from ..engine.checkpoints import load_run_model
from ..engine.run_folder import RunFolder
from ..errors import ConfigError
from ..pooling import LDWPool2d, ldw_analysis, ldw_synthesis
from ..recon.quality import psnr_from_mse
from ..tasks import get_task
from .runs import train_labelled

__all__ = ["ABLATIONS", "pool_round_trip_psnr", "run_sweep", "run_ablation"]

log = logging.getLogger(__name__)

# name -> list of (row label, overrides); table 3 has no "max pooling + attention": the attention gates LDW subbands
ABLATIONS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "table3": [
        ("LDW + energy attention", {"model.down": "ldw", "model.up": "ldw", "model.attention": True}),
        ("LDW, no attention", {"model.down": "ldw", "model.up": "ldw", "model.attention": False}),
        ("max pooling (no LDW)", {"model.down": "maxpool", "model.up": "deconv", "train.wavelet_weight": 0.0}),
    ],
    "table6": [
        ("pretrain + L_wavelet", {"model.wavelet": "random"}),
        ("pretrain, no L_wavelet", {"model.wavelet": "random", "train.wavelet_weight": 0.0}),
        ("no pretrain + L_wavelet", {"model.wavelet": "noise"}),
        ("no pretrain, no L_wavelet", {"model.wavelet": "noise", "train.wavelet_weight": 0.0}),
    ],
}
PAPER_MODEL = {"model.down": "ldw", "model.up": "ldw", "model.attention": True}
"""The paper's LDW-UNet, which table 6 ablates (table 3's rows name their own model)."""


@torch.no_grad()
def pool_round_trip_psnr(model: torch.nn.Module, images: Iterable[torch.Tensor]) -> float:
    """Worst PSNR (dB, inf when exact) of ``unpool(pool(x))`` over the model's pools and ``images``.

    Each image (C, H, W) in [0, 1] goes through every pool's filters alone; channels are
    pooled independently, so the filters see the image itself.
    """
    worst = math.inf
    pools = [m for m in model.modules() if isinstance(m, LDWPool2d)]
    for x in images:
        x = x.unsqueeze(0).double()
        for pool in pools:
            low, high = (f.detach().double() for f in pool.filters())
            rec = ldw_synthesis(ldw_analysis(x, low, high), low, high, output_size=x.shape[-2:])
            worst = min(worst, psnr_from_mse((rec - x).square().mean()).item())
    return worst


@torch.no_grad()
def _run_record(cfg: Config, out: Path, score_name: str) -> dict[str, Any]:
    model, meta, _ = load_run_model(RunFolder(out).best, torch.device("cpu"), task=cfg.train.task)
    pools = [m for m in model.modules() if isinstance(m, LDWPool2d)]
    record: dict[str, Any] = {
        "constraint": cfg.model.constraint,
        "wavelet_weight": cfg.train.wavelet_weight,
        score_name: float(meta["metrics"][score_name]),
        "best_epoch": int(meta["epoch"]),
    }
    if not pools:
        return {**record, "roundtrip_psnr": float("nan"), "wavelet_loss": float("nan"), "paper_loss": float("nan"),
                "pr_error": float("nan")}  # fmt: skip
    data = get_task(cfg.train.task).data(cfg)
    images = [_as_unit_image(data.val[i][0]) for i in range(min(4, len(data.val)))]
    record["roundtrip_psnr"] = pool_round_trip_psnr(model, images)
    record["wavelet_loss"] = sum(float(p.wavelet_loss()) for p in pools)
    record["paper_loss"] = sum(float(sum(p.paper_terms().values())) for p in pools)
    record["pr_error"] = max(p.pr_error() for p in pools)
    return record


def _as_unit_image(x: torch.Tensor) -> torch.Tensor:
    """Validation inputs rescaled to [0, 1] (segmentation images are normalised)."""
    lo, hi = x.amin(), x.amax()
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def run_sweep(
    cfg: Config,
    out: str | Path,
    *,
    weights: list[float],
    constraints: list[str],
    progress: Callable | None = None,
) -> list[dict[str, Any]]:
    """Train one run per ``(constraint, weight)`` and return (and write) the table."""
    from .plots import plot_sweep, write_csv

    out = Path(out)
    score = get_task(cfg.train.task).score
    if not weights or not constraints:
        raise ConfigError("a sweep needs at least one constraint weight and one constraint mode")
    # every run's config is checked before the first one trains, so a bad value fails at once
    runs = [
        (
            constraint,
            weight,
            apply_overrides(
                Config.from_dict(cfg.to_dict()),
                {
                    "model.constraint": constraint,
                    "train.wavelet_weight": weight,
                },
            ),
        )  # fmt: skip
        for constraint in constraints
        for weight in weights
    ]
    rows = []
    for constraint, weight, run_cfg in runs:
        run_out = out / f"{constraint}_w{weight:g}"
        train_labelled(run_cfg, run_out, label=run_out.name, whose="this sweep's", progress=progress)
        rows.append(_run_record(run_cfg, run_out, score))
        write_csv(rows, out / "sweep.csv")
    label = {"miou": "val mIoU", "psnr": "autoencoder PSNR (dB)"}[score]
    plot_sweep(rows, out / "sweep.png", task_metric=score, task_label=label)
    return rows


def run_ablation(cfg: Config, out: str | Path, *, table: str, progress: Callable | None = None) -> list[dict[str, Any]]:
    """The paper's ablation ``table`` ("table3" or "table6") as runs of ``cfg``."""
    from .plots import write_csv

    if table not in ABLATIONS:
        raise ConfigError(f"unknown ablation table {table!r}; choose {', '.join(ABLATIONS)}")
    out = Path(out)
    score = get_task(cfg.train.task).score
    runs = []
    for label, overrides in ABLATIONS[table]:
        run_cfg = Config.from_dict(cfg.to_dict())
        if table == "table6":
            # a lattice bank is a PR bank for any angles, so "pretrain" (a random start that
            # satisfies the constraint) and "no pretrain" (plain noise) need a loss-kept constraint
            constraint = "orthogonal" if run_cfg.model.constraint == "lattice" else run_cfg.model.constraint
            overrides = {**PAPER_MODEL, "model.constraint": constraint, **overrides}
            if run_cfg.model.kernel_size is None:
                overrides["model.kernel_size"] = 4
        runs.append((label, apply_overrides(run_cfg, overrides)))
    rows = []
    for label, run_cfg in runs:
        run_out = out / label.replace(" ", "_").replace(",", "").replace("+", "plus").replace("(", "").replace(")", "")
        train_labelled(run_cfg, run_out, label=label, whose="this ablation's", progress=progress)
        rows.append({"setting": label, **_run_record(run_cfg, run_out, score)})
        write_csv(rows, out / f"{table}.csv")
    return rows
