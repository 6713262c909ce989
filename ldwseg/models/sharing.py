"""Saving a network with what it needs to be used again: ``save_pretrained`` and ``push_to_hub``.

A shared model is a folder with two files, the layout of the Hugging Face Hub:

* ``model.safetensors``: the weights with ldwseg's metadata (the task, the config that
  rebuilds the network, the classes, how the run evaluated), the same file a training run
  writes, so every ``ldwseg`` command that takes a checkpoint takes the folder too;
* ``README.md``: a model card (:func:`model_card`) written from that metadata.

The networks ldwseg builds (:class:`~ldwseg.models.UNet`,
:class:`~ldwseg.models.smp.SMPSegmenter`) carry :class:`PretrainedMixin`. Their
``checkpoint_metadata`` is set by :func:`ldwseg.create_model`, by
:func:`ldwseg.from_pretrained` and when a run's checkpoint is loaded; a network built by
hand has none, and saving it says how to build one that does.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, LDWSegError
from ..io.atomic import atomic_write
from ..io.weights import MODEL_FILE, save_weights
from ..task_kinds import TASK_KINDS

__all__ = ["CARD_FILE", "MODEL_FILE", "HubError", "PretrainedMixin", "model_card"]

CARD_FILE = "README.md"


class HubError(LDWSegError):
    """The Hugging Face Hub cannot be reached or refused the request (offline, no token, no such repo)."""


def _section(meta: dict[str, Any], name: str) -> dict[str, Any]:
    value = meta.get(name)
    return value if isinstance(value, dict) else {}


def model_card(meta: dict[str, Any]) -> str:
    """A model card (Markdown with the Hub's YAML front matter) from a checkpoint's metadata."""
    config = _section(meta, "config")
    model, data, train = _section(config, "model"), _section(config, "data"), _section(config, "train")
    dataset = _section(meta, "dataset")
    kind = TASK_KINDS.get(meta.get("task"))
    task = kind.description if kind is not None else "unknown task"
    classes = dataset.get("class_names") or []
    lines = [
        "---",
        "library_name: ldwseg",
        "license: mit",
        "tags: [ldwseg, wavelet-pooling, "
        + ("autoencoder" if kind is not None and kind.predicts_image else "semantic-segmentation")
        + "]",
        "---",
        "",
        f"# {model.get('arch', 'unet')} with {model.get('down', '?')} / {model.get('up', '-')} ({task})",
        "",
        "Learnable Discrete Wavelet Pooling (Wang et al., 2022), trained with "
        f"[ldwseg](https://github.com/ldwseg/ldwseg) {meta.get('ldwseg_version', '')}.".rstrip(),
        "",
        "## Model",
        "",
        *(f"* `model.{k}`: `{json.dumps(v)}`" for k, v in model.items()),
        "",
        "## Data",
        "",
        f"* data set: `{dataset.get('name', data.get('dataset', '?'))}`, {len(classes)} classes: "
        + (", ".join(classes) if classes else "-"),
        f"* evaluated at `data.eval_scale` = {data.get('eval_scale', 1.0)} (the network runs on the image resized by "
        "it; its logits are resized back to the image)",
    ]
    metrics = {k: v for k, v in _section(meta, "metrics").items() if isinstance(v, float)}
    if metrics:
        where = f"epoch {meta['epoch'] + 1} of {train.get('epochs', '?')}" if isinstance(meta.get("epoch"), int) else ""
        lines += ["", f"## Validation scores ({data.get('val_split', 'val')} split{', ' + where if where else ''})", ""]
        lines += [f"* `{k}`: {v:.4f}" for k, v in metrics.items() if not k.startswith("iou_")]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import ldwseg",
        "",
        'model = ldwseg.from_pretrained("<this folder or repo id>")  # in eval mode',
        "```",
        "",
        "Or with the command line: `ldwseg evaluate <folder>`, `ldwseg predict <folder> images/`.",
        "",
    ]
    return "\n".join(lines)


class PretrainedMixin:
    """``save_pretrained`` and ``push_to_hub`` for a network that knows its ``checkpoint_metadata``."""

    checkpoint_metadata: dict[str, Any] | None = None

    def _metadata(self) -> dict[str, Any]:
        if not self.checkpoint_metadata:
            raise CheckpointError(
                f"this {type(self).__name__} has no ldwseg metadata (how to rebuild it, its classes), so it cannot be "
                "saved for sharing; build it with ldwseg.create_model(...) or load it with ldwseg.from_pretrained(...)"
            )
        return self.checkpoint_metadata

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``folder/model.safetensors`` and ``folder/README.md`` (the model card); returns ``folder``."""
        meta = self._metadata()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(folder / MODEL_FILE, self, metadata=meta)  # type: ignore[arg-type]
        card = model_card(meta)
        atomic_write(folder / CARD_FILE, lambda tmp: tmp.write_text(card, encoding="utf-8"))
        return folder

    def push_to_hub(
        self, repo_id: str, *, token: str | None = None, private: bool = False, commit_message: str = "ldwseg model"
    ) -> str:
        """Upload :meth:`save_pretrained`'s folder to the Hub repository ``repo_id`` (created if missing); its URL.

        Raises:
            HubError: the Hub cannot be reached (offline) or refuses the request (no token, no rights).
        """
        self._metadata()
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise HubError("push_to_hub needs huggingface_hub: pip install huggingface_hub") from None
        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            try:
                api.create_repo(repo_id, private=private, exist_ok=True)
                info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
            except Exception as err:  # the Hub client raises many kinds (HTTP, connection, auth)
                raise HubError(
                    f"could not push to the Hub repository {repo_id!r}: {type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}; check the connection and your token "
                    "(huggingface-cli login), or save_pretrained(folder) and upload it yourself"
                ) from None
        return str(getattr(info, "commit_url", "") or f"https://huggingface.co/{repo_id}")
