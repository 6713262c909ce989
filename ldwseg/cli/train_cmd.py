"""``ldwseg train``: one training run from a config, flags and ``--set`` overrides."""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from .app import app, check_output, check_run_folder, new_output, progress, user_errors


def resolve_config(config: Path | None, flags: dict, overrides: list[str]):
    """Defaults < task defaults < ``--config`` file < flags < ``--set`` overrides."""
    from ..config import apply_overrides
    from ..tasks import load_config

    cfg = load_config(config, {k: v for k, v in flags.items() if v is not None}, validate=False)
    return apply_overrides(cfg, overrides)


@dataclass(frozen=True)
class Sets:
    """Marks an option of ``ldwseg train`` with the config field it sets (``--set`` sets any field)."""

    key: str


def _option_fields() -> dict[str, str]:
    """Option name -> the config field it sets, read from the :class:`Sets` marks of :func:`train`'s parameters."""
    hints = typing.get_type_hints(train, include_extras=True)
    return {
        name: mark.key
        for name, hint in hints.items()
        for mark in getattr(hint, "__metadata__", ())
        if isinstance(mark, Sets)
    }


def config_of(params: dict):
    """The config that ``ldwseg train`` runs for its parsed options ``params`` (also used by ``compare``)."""
    flags = {key: params.get(name) for name, key in _option_fields().items()}
    for key in ("data.root", "train.init_from"):
        if flags[key] is not None:
            flags[key] = str(flags[key])
    for switch in ("data.download", "data.skip_bad"):  # a switch left off keeps the config's value
        flags[switch] = flags[switch] or None
    cfg = resolve_config(params.get("config"), flags, list(params.get("overrides") or []))
    _check_arch_options(cfg, params)
    if params.get("wavelet_weight") is not None and not has_constraint_loss(cfg):
        logging.getLogger("ldwseg").warning(
            "--wavelet-weight has no effect with model.constraint=lattice: the lattice keeps every filter bank "
            "orthogonal by construction, so its constraint loss is 0; use --constraint orthogonal or paper to weigh one"
        )
    return cfg


def has_constraint_loss(cfg) -> bool:
    """Whether ``train.wavelet_weight`` can change the run: not under ``model.constraint=lattice``, whose loss is 0."""
    return cfg.model.constraint != "lattice"


def _check_arch_options(cfg, params: dict) -> None:
    """Refuse ``--up`` with an smp arch and ``--encoder`` with the UNet: options given for a network that
    has no such part (the config fields are then not used, see :class:`~ldwseg.config.ModelConfig`)."""
    from ..errors import ConfigError
    from ..models.smp import DECODER_UPSAMPLING

    arch = cfg.model.arch
    if params.get("up") is not None and arch != "unet":
        raise ConfigError(
            f"--up chooses the decoder blocks of --arch unet; {arch} upsamples by its own decoder "
            f"({DECODER_UPSAMPLING[arch]}), so drop --up"
        )
    if params.get("encoder") is not None and arch == "unet":
        raise ConfigError(
            "--encoder chooses the encoder of an smp --arch; --arch unet has its own (--down, model.base_width, "
            "model.depth): add --arch smp-unet (or smp-unetplusplus, smp-fpn, smp-deeplabv3plus) or drop --encoder"
        )


_NAMED_FIELDS = (
    "model.arch", "model.encoder", "model.encoder_weights", "model.down", "model.up", "model.constraint",
    "model.wavelet", "model.attention", "train.wavelet_weight",
)  # fmt: skip
"""The settings that name a default output folder when they differ from the task's defaults
(the encoder's only for an smp arch, which uses it; the constraint weight only where there is a constraint loss)."""


def _tag(field: str, value) -> str:
    if isinstance(value, bool):
        return field if value else f"no{field}"
    return f"w{value:g}" if field == "wavelet_weight" else str(value)


def default_out(cfg) -> Path:
    """``runs/<dataset>`` (``runs/recon-<dataset>`` for the recon task) plus each of :data:`_NAMED_FIELDS`
    that differs from the task's default: ``runs/synthetic-maxpool-deconv`` for ``--down maxpool --up deconv``."""
    from ..task_kinds import TASK_KINDS
    from ..tasks import load_config

    base = load_config(None, {"train.task": cfg.train.task}, validate=False)
    parts = [TASK_KINDS[cfg.train.task].folder_prefix + cfg.data.dataset]
    for key in _NAMED_FIELDS:
        if key.startswith("model.encoder") and cfg.model.arch == "unet":
            continue
        if key == "train.wavelet_weight" and not has_constraint_loss(cfg):
            continue
        section, field = key.split(".")
        value = getattr(getattr(cfg, section), field)
        if value != getattr(getattr(base, section), field):
            parts.append(_tag(field, value))
    return Path("runs") / "-".join(parts)


def check_start(cfg, out: Path) -> None:
    """Refuse an unusable ``out``, or a device or precision this machine lacks, before any file is read or written."""
    from ..engine.distributed import check_precision, resolve_device

    check_output(out, folder=True)
    check_precision(resolve_device(cfg.train.device), cfg.train.amp)


@app.command()
@user_errors
def train(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        help="YAML config (see configs/); flags below override it [default: none, the defaults shown].",
    ),
    task: Annotated[str | None, Sets("train.task")] = typer.Option(
        None, help="{choices:task}; a task's own defaults are marked 'for --task recon' [default: {train.task}]."
    ),
    dataset: Annotated[str | None, Sets("data.dataset")] = typer.Option(
        None, help="{choices:dataset} [default: {data.dataset}]."
    ),
    data_root: Annotated[Path | None, Sets("data.root")] = typer.Option(
        None,
        help="Folder of the data set (VOCdevkit for voc12) [default: $LDWSEG_DATA/<dataset>, else "
        "./data/<dataset>, for synthetic and photos (made there); the others need it].",
    ),
    out: Path | None = typer.Option(
        None,
        help="Output folder for checkpoints and logs [default: runs/<dataset> (runs/recon-<dataset> for --task "
        "recon) plus the model settings that differ, e.g. runs/synthetic-maxpool-deconv].",
    ),
    epochs: Annotated[int | None, Sets("train.epochs")] = typer.Option(
        None, min=1, help="Number of epochs [default: {train.epochs}]."
    ),
    batch_size: Annotated[int | None, Sets("train.batch_size")] = typer.Option(
        None, min=1, help="Batch size per process [default: {train.batch_size}]."
    ),
    lr: Annotated[float | None, Sets("optim.lr")] = typer.Option(
        None,
        help="Learning rate [default: {optim.lr}]; optim.schedule (step, poly or cosine) decays it, "
        "optim.name ({choices:optimizer}) takes it.",
    ),
    wavelet_weight: Annotated[float | None, Sets("train.wavelet_weight")] = typer.Option(
        None, min=0.0, help="Weight of the constraint loss (lambda) [default: {train.wavelet_weight}]."
    ),
    constraint: Annotated[str | None, Sets("model.constraint")] = typer.Option(
        None, help="{choices:constraint} [default: {model.constraint}]."
    ),
    down: Annotated[str | None, Sets("model.down")] = typer.Option(
        None,
        help="Downsampler, by kind ({choices:down}); the manual's Segmentation page says what each is "
        "[default: {model.down}].",
    ),
    up: Annotated[str | None, Sets("model.up")] = typer.Option(
        None, help="Upsampler, by kind ({choices:up}) [default: {model.up}]."
    ),
    arch: Annotated[str | None, Sets("model.arch")] = typer.Option(
        None,
        help="Network: {choices:arch}; unet is the paper's UNet (--down, --up, model.base_width, model.depth), "
        "the smp ones run on --encoder, their decoders upsample by interpolation (no --up) and their --down is ldw "
        "(the encoder's stride-2 pools and convs become LDW blocks) or maxpool (as smp builds it) "
        "[default: {model.arch}].",
    ),
    encoder: Annotated[str | None, Sets("model.encoder")] = typer.Option(
        None,
        help="Encoder of an smp --arch: a name of smp.encoders.get_encoder_names() (resnet18, resnet50, "
        "efficientnet-b0, ...) or tu-<timm model>; ImageNet weights with --set model.encoder_weights=imagenet "
        "(downloaded once) [default: {model.encoder}, encoder_weights {model.encoder_weights}].",
    ),
    device: Annotated[str | None, Sets("train.device")] = typer.Option(
        None, help="auto (cuda when there is a GPU, else cpu), cpu, cuda or cuda:N [default: {train.device}]."
    ),
    seed: Annotated[int | None, Sets("train.seed")] = typer.Option(None, help="Random seed [default: {train.seed}]."),
    amp: Annotated[str | None, Sets("train.amp")] = typer.Option(
        None, help="Mixed precision: {choices:amp} [default: {train.amp}]."
    ),
    channels_last: Annotated[bool | None, Sets("train.channels_last")] = typer.Option(
        None, "--channels-last/--no-channels-last", help="NHWC memory format [default: {train.channels_last}]."
    ),
    sync_bn: Annotated[bool | None, Sets("train.sync_bn")] = typer.Option(
        None,
        "--sync-bn/--no-sync-bn",
        help="BatchNorm statistics over all torchrun ranks (torch's SyncBatchNorm on CUDA, ldwseg's on CPU and gloo) [default: {train.sync_bn}].",
    ),
    download: Annotated[bool, Sets("data.download")] = typer.Option(False, help="Download the data set first (voc12)."),
    skip_bad: Annotated[bool, Sets("data.skip_bad")] = typer.Option(
        False, help="Skip unreadable files instead of failing (they are listed)."
    ),
    init_from: Annotated[Path | None, Sets("train.init_from")] = typer.Option(
        None,
        help="Start from the weights of this checkpoint (or save_pretrained folder) that fit: fine-tuning, e.g. "
        "on another class count (the head starts anew); one line says what was not loaded [default: none].",
    ),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last.state.pt."),
    overwrite: bool = typer.Option(
        False,
        help="Replace the run in --out: remove its checkpoints, metrics.csv, config.yaml and tensorboard/ "
        "first. Without --resume or --overwrite a folder that holds a run is refused.",
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        help="Any config field, e.g. --set data.crop_size=128 (repeatable) [defaults: data.crop_size "
        "{data.crop_size}, model.base_width {model.base_width}, model.depth {model.depth}, train.loss {train.loss} "
        "({choices:loss}); a run's config.yaml lists every field].",
    ),
) -> None:
    """Train a UNet (max-pool or LDW) or an smp network (--arch) for segmentation, or a UNet as an autoencoder
    (--task recon)."""
    from ..engine.distributed import is_main_process
    from ..engine.run_folder import written_files
    from ..pooling.allocator import keep_freed_memory
    from ..tasks import get_task
    from ..tasks import train as train_run

    keep_freed_memory()

    cfg = config_of(ctx.params)
    out = out or default_out(cfg)
    check_start(cfg, out)
    check_run_folder(out, resume=resume, overwrite=overwrite)
    with new_output(out):
        result = train_run(cfg, out, resume=resume, progress=progress)
    if not is_main_process():  # rank 0 speaks for the torchrun group: the other ranks wrote nothing
        return
    label = get_task(cfg.train.task).label
    skipped = f"; skipped {result.skipped} bad samples (listed in the log)" if result.skipped else ""
    typer.echo(
        f"best val {label} {result.best_score:.4f} (epoch {result.best_epoch + 1}), {result.seconds:.0f} s{skipped}; "
        f"wrote {result.out}: {', '.join(written_files(result.out))}"
    )
