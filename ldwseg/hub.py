"""Models by name, and shared models: ``create_model``, ``list_models``, ``from_pretrained``.

``create_model`` takes segmentation_models_pytorch's argument names (``arch``, ``classes``,
``in_channels``, ``encoder_name``/``encoder``, ``encoder_weights``) and, for the rest,
the fields of ``ldwseg train``'s ``model`` section (``down=``, ``up=``, ``base_width=``,
``wavelet=``, ...). Every model it returns, and every model ``from_pretrained`` loads,
has ``save_pretrained(folder)`` and ``push_to_hub(repo_id)``
(:mod:`ldwseg.models.sharing`), and the ``ldwseg`` commands take such a folder wherever
they take a checkpoint.

Example:
    >>> import ldwseg, torch
    >>> model = ldwseg.create_model("unet", classes=3, base_width=8, depth=2, down="maxpool", up="deconv")
    >>> model(torch.zeros(1, 3, 32, 48)).shape
    torch.Size([1, 3, 32, 48])
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from .config import Config, ModelConfig
from .datasets.palette import voc_palette
from .engine.checkpoints import load_run_model
from .errors import CheckpointError, ConfigError
from .models.build import ARCHS, build_network
from .models.sharing import CARD_FILE, MODEL_FILE, HubError
from .version import __version__

__all__ = ["create_model", "from_pretrained", "list_models"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def list_models() -> list[str]:
    """The ``arch`` names :func:`create_model` builds: ``unet`` (the paper's UNet) and the smp networks."""
    return list(ARCHS)


def create_model(
    arch: str = "unet",
    *,
    classes: int,
    in_channels: int = 3,
    class_names: Sequence[str] | None = None,
    encoder_name: str | None = None,
    **options: Any,
) -> nn.Module:
    """A new network, randomly initialised (or with ImageNet encoder weights where asked), ready to train.

    Args:
        arch: one of :func:`list_models`.
        classes: output maps (segmentation classes).
        in_channels: image channels.
        class_names: one name per class, kept with the model and shown by the commands
            (default ``class0``, ``class1``, ...).
        encoder_name: smp's name for the encoder of an smp arch (the same as ``encoder=``).
        **options: fields of :class:`~ldwseg.config.ModelConfig` (``down``, ``up``,
            ``base_width``, ``depth``, ``wavelet``, ``constraint``, ``encoder``,
            ``encoder_weights``, ...).

    Raises:
        ConfigError: an unknown option or an invalid value (the message names it).
    """
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"arch", "in_channels"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"create_model got unknown option(s) {', '.join(unknown)}; valid ones are {', '.join(sorted(fields))}"
        )
    if encoder_name is not None:
        options["encoder"] = encoder_name
    if classes < 1 or in_channels < 1:
        raise ConfigError(f"create_model needs classes >= 1 and in_channels >= 1, got {classes} and {in_channels}")
    names = list(class_names) if class_names is not None else [f"class{k}" for k in range(classes)]
    if len(names) != classes:
        raise ConfigError(f"class_names lists {len(names)} names for {classes} classes; give one name per class")
    cfg = Config(model=ModelConfig(arch=arch, in_channels=in_channels, **options))
    cfg.model.validate()
    model = build_network(cfg.model, in_channels, classes)
    palette = voc_palette()
    model.checkpoint_metadata = {
        "task": "seg",
        "ldwseg_version": __version__,
        "config": cfg.to_dict(),
        "dataset": {
            "name": "none", "num_classes": classes, "class_names": names, "out_channels": classes,
            "palette": [palette[k % len(palette)].tolist() for k in range(classes)],
        },
    }  # fmt: skip
    return model


def _checkpoint_file(source: str | Path) -> Path | None:
    """The weights file of a local checkpoint or folder, ``None`` when ``source`` names nothing on disk."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise CheckpointError(
                f"folder {path} holds no {MODEL_FILE}; give a folder written by save_pretrained, or a checkpoint file"
            )
        return path / MODEL_FILE
    return path if path.exists() else None


def from_pretrained(source: str | Path, *, device: str = "cpu", revision: str | None = None) -> nn.Module:
    """A shared model in eval mode: a folder of :meth:`save_pretrained`, a checkpoint file, or a Hub repo id.

    Args:
        source: a local folder (``model.safetensors`` and its card), a ``.safetensors``
            checkpoint of an ldwseg run, or ``"user/name"`` on the Hugging Face Hub
            (downloaded once into the Hub's cache).
        device: where to put it.
        revision: the Hub revision (branch, tag or commit) to load.

    Raises:
        CheckpointError: the file is not an ldwseg checkpoint.
        HubError: ``source`` is neither on disk nor reachable on the Hub (offline, no such repo).
    """
    path = _checkpoint_file(source)
    if path is None:
        path = _download(str(source), revision)
    model, _, _ = load_run_model(path, device)
    return model


def _download(repo_id: str, revision: str | None) -> Path:
    if not _HUB_ID.fullmatch(repo_id):
        raise CheckpointError(f"{repo_id} does not exist; give a folder, a checkpoint file or a Hub id user/name")
    try:
        from huggingface_hub import hf_hub_download

        file = hf_hub_download(repo_id, MODEL_FILE, revision=revision)
        hf_hub_download(repo_id, CARD_FILE, revision=revision)
    except Exception as err:  # offline, unknown repo, gated repo: the Hub client raises many kinds
        first = str(err).splitlines()[0] if str(err) else ""
        raise HubError(
            f"could not load {repo_id!r} from the Hugging Face Hub ({type(err).__name__}: {first}); check the id and "
            "the connection, or download the folder and give its path"
        ) from None
    return Path(file)
