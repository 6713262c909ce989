"""``ldwseg bench``: the pooling benchmark."""

from __future__ import annotations

import typer

from .app import app, check_device, log, user_errors


@app.command()
@user_errors
def bench(
    repeats: int = typer.Option(15, min=1, help="Timed repetitions per case; the median is reported."),
    device: str = typer.Option(
        "auto",
        callback=check_device,
        help="auto (cuda when there is a GPU, else cpu), cpu, cuda or cuda:N; CUDA "
        "times wait for the GPU's kernels (torch.utils.benchmark's clock).",
    ),
    threads: int = typer.Option(0, min=0, help="torch threads (0: leave torch's default)."),
    quick: bool = typer.Option(False, help="Only the smallest shape, for a fast look."),
    warm: bool = typer.Option(True, help="Time with warm caches (--no-warm: other cases run in between)."),
    keep_memory: bool = typer.Option(
        True,
        help="Allocator as `ldwseg train` runs it (freed memory kept, see ldwseg.pooling.allocator); "
        "--no-keep-memory: glibc's default.",
    ),
) -> None:
    """Time LDW pooling against MaxPool2d, ConvTranspose2d, clone and pytorch_wavelets.

    A peer that is not installed (pytorch_wavelets) is skipped; the report names it, and why.
    The table's first line names the device it was timed on.
    """
    import torch

    from ..analysis.bench import format_table, run_pool_benchmark, skipped_peers
    from ..engine.distributed import resolve_device
    from ..pooling.allocator import keep_default_allocator, keep_freed_memory

    where = resolve_device(device)

    kept = keep_freed_memory() if keep_memory else keep_default_allocator()
    if threads:
        torch.set_num_threads(threads)
    rows = run_pool_benchmark(repeats=repeats, quick=quick, warm=warm, device=where, progress=log.info)
    typer.echo(f"allocator: {'freed memory kept (ldwseg.pooling.allocator)' if kept else 'glibc default'}")
    typer.echo(format_table(rows, where))
    for peer, why in skipped_peers().items():
        typer.echo(f"skipped {peer}: {why}")
