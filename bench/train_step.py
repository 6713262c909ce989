"""What speeds up a CPU training step: torch.compile, channels-last, threads (one process, ratios).

Times whole training steps (forward, loss, backward, Adam step) of the networks of a config,
in one process, the settings interleaved so that load on the machine hits them alike: the
median of ``--steps`` timed steps each, after ``--warmup`` untimed ones (the first calls of
a compiled model compile it; that time is reported apart). Prints one row per setting with
its median step time and its ratio to eager float32 NCHW on the same network.

Usage::

    python bench/train_step.py --config configs/camvid_converged.yaml \\
        --variant "default: " --variant "max: model.down=maxpool model.up=deconv"

Settings: ``eager``; ``channels-last`` (model and inputs NHWC); ``compile``
(``torch.compile`` of the model, inductor); ``threads=1`` (eager on one thread, against the
default of one per core). Run it alone: a second process on a 2-core machine doubles the times.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ldwseg.analysis.compare import parse_variant
from ldwseg.config import apply_overrides
from ldwseg.engine.build import build_model
from ldwseg.engine.optim import build_optimizer
from ldwseg.pooling import wavelet_loss
from ldwseg.seg.loss import segmentation_criterion
from ldwseg.tasks import load_config

SETTINGS = ("eager", "channels-last", "compile", "threads=1")


def step_closure(cfg, setting: str, classes: int):
    """A closure running one training step of ``cfg``'s network under ``setting``, and its first-call seconds."""
    torch.manual_seed(0)
    model = build_model(cfg, classes)
    batch, crop = cfg.train.batch_size, cfg.data.crop_size
    images = torch.randn(batch, 3, crop, crop)
    target = torch.randint(0, classes, (batch, crop, crop))
    if setting == "channels-last":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.optim)
    criterion = segmentation_criterion("ce")
    net = torch.compile(model) if setting == "compile" else model
    model.train()
    threads = 1 if setting == "threads=1" else torch.get_num_threads()

    def step() -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            loss = criterion(net(images), target) + cfg.train.wavelet_weight * wavelet_loss(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        finally:
            torch.set_num_threads(before)

    start = time.perf_counter()
    step()
    return step, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=None, help="Base YAML config [default: the defaults].")
    parser.add_argument("--variant", action="append", default=[], help='"NAME: section.field=value ..."')
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="section.field=value")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"Comma-separated of {', '.join(SETTINGS)}.")
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    base = load_config(args.config, args.overrides)
    variants = [parse_variant(v) for v in args.variant] or [parse_variant("default: ")]
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"error: unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {base.train.batch_size} x "
          f"{base.data.crop_size}^2; median of {args.steps} steps after {args.warmup}")  # fmt: skip
    print("| network | setting | first call | step (median) | vs eager |\n|---|---|---|---|---|")
    for variant in variants:
        cfg = apply_overrides(load_config(args.config, args.overrides), list(variant.overrides))
        runs, first, failed = {}, {}, {}
        for setting in settings:
            try:
                runs[setting], first[setting] = step_closure(cfg, setting, args.classes)
            except Exception as err:  # a compiler failure is a result of this benchmark, not its end
                failed[setting] = f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"
        for _ in range(args.warmup - 1):
            for run in runs.values():
                run()
        times = {s: [] for s in runs}
        for _ in range(args.steps):
            for setting, run in runs.items():
                start = time.perf_counter()
                run()
                times[setting].append(time.perf_counter() - start)
        eager = statistics.median(times["eager"]) if "eager" in times else None
        for setting in settings:
            if setting in failed:
                print(f"| {variant.name} | {setting} | failed: {failed[setting]} | - | - |")
                continue
            median = statistics.median(times[setting])
            ratio = f"{median / eager:.2f}x" if eager else "-"
            print(f"| {variant.name} | {setting} | {first[setting]:.1f} s | {1e3 * median:.0f} ms | {ratio} |")


if __name__ == "__main__":
    main()
