"""PASCAL VOC 2012 (``VOCdevkit/VOC2012``) and its SBD-augmented masks (``SegmentationClassAug``)."""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError, WriteFailed
from ..io.atomic import atomic_folder
from .listing import index_by_stem, read_id_list

__all__ = ["VOC2012_MD5", "VOC2012_URLS", "download_voc2012", "find_voc2012", "voc12_files"]

logger = logging.getLogger(__name__)

VOC2012_URLS = (
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",  # the official mirror
)
VOC2012_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
_ARCHIVE = "VOCtrainval_11-May-2012.tar"
_EXTRACTED = ".extracted"  # inside the hidden folder that becomes VOC2012
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # VOC ships JPEG; the synthetic set may use PNG
_HINT = "point --data-root at the folder that contains VOC2012 (VOCdevkit)"


def find_voc2012(root: Path) -> Path:
    """The ``VOC2012`` folder of ``root``, which is either ``VOCdevkit`` or ``VOC2012`` itself.

    A root one level too high (holding ``VOCdevkit``) or inside ``VOC2012`` raises an error
    that names the folder to use instead.
    """
    if root.exists() and not root.is_dir():
        raise DataError(f"VOC root {root} is a file, not a folder; {_HINT}")
    if not root.is_dir():
        raise DataError(f"VOC root {root} does not exist; {_HINT}, or pass download=True (--download)")
    if (root / "JPEGImages").is_dir():
        return root
    if (root / "VOC2012" / "JPEGImages").is_dir():
        return root / "VOC2012"
    if (root / "VOCdevkit" / "VOC2012").is_dir():
        raise DataError(
            f"VOC root {root} is one level too high: expected {root}/VOC2012/JPEGImages, found "
            f"{root}/VOCdevkit/VOC2012; point --data-root at {root / 'VOCdevkit'}"
        )
    resolved = root.resolve()
    for voc in (resolved.parent, resolved.parent.parent):
        if (voc / "JPEGImages").is_dir():
            raise DataError(
                f"VOC root {root} is inside the VOC2012 folder {voc}: expected a folder that contains "
                f"VOC2012/JPEGImages; point --data-root at {voc.parent} (or at {voc})"
            )
    if root.name == "VOC2012" or (root / "SegmentationClass").is_dir():
        raise DataError(
            f"VOC folder {root} has no JPEGImages: expected {root}/JPEGImages/*.jpg; extract the VOC 2012 "
            "trainval archive there or pass download=True (--download)"
        )
    raise DataError(f"VOC root {root} has no VOC2012 folder: expected {root}/VOC2012/JPEGImages; {_HINT}")


def _voc_nearby(root: Path) -> bool:
    """Whether ``root`` holds VOC data or lies inside it, right or wrong level (then: no download)."""
    resolved = root.resolve()
    near = (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012", resolved.parent, resolved.parent.parent)
    return any((p / "JPEGImages").is_dir() for p in near) or (root / "VOC2012").is_dir()


def download_voc2012(root: Path, *, urls: Sequence[str] | None = None, md5: str | None = None) -> Path:
    """Download and extract the VOC 2012 trainval archive (2 GB) so that ``root/VOC2012`` exists.

    Tries ``urls`` (default :data:`VOC2012_URLS`) in turn; the archive is checked against
    ``md5`` (default :data:`VOC2012_MD5`). The archive is downloaded and extracted inside a
    hidden folder beside ``root/VOC2012``, which takes that name in one rename once complete
    (:func:`~ldwseg.io.atomic_folder`): a dropped connection, a full disk or Ctrl-C leaves
    no partial tree and no partial archive, and the next run downloads again.

    Raises:
        DataError: no URL gave a complete archive (each one's failure is listed).
        WriteFailed: the disk refused the archive or its files (no space, read-only, ...).
    """
    from torchvision.datasets.utils import download_url, extract_archive

    urls = VOC2012_URLS if urls is None else urls
    md5 = VOC2012_MD5 if md5 is None else md5
    target = root / "VOC2012"
    errors = []
    for url in urls:
        logger.info("downloading %s into %s", url, root)
        try:
            with atomic_folder(target) as scratch:
                download_url(url, scratch, filename=_ARCHIVE, md5=md5)
                extract_archive(str(scratch / _ARCHIVE), str(scratch / _EXTRACTED))
                _take_voc2012(scratch)
        except WriteFailed:
            raise  # another mirror needs the same disk
        except (OSError, RuntimeError, http.client.HTTPException, tarfile.TarError) as err:
            errors.append(f"{url}: {err}")
            logger.info("download from %s failed: %s", url, err)  # the final error lists every failure
            continue
        return target
    raise DataError(
        f"could not download VOC 2012 ({'; '.join(errors)}); download {_ARCHIVE} by hand and extract its "
        f"VOCdevkit/VOC2012 folder into {root}"
    )


def _take_voc2012(scratch: Path) -> None:
    """Make the extracted ``VOCdevkit/VOC2012`` the content of ``scratch``, dropping the archive and the rest."""
    extracted = scratch / _EXTRACTED / "VOCdevkit" / "VOC2012"
    if not extracted.is_dir():
        raise RuntimeError(f"the archive holds no VOCdevkit/VOC2012 folder (it has {_listing(scratch / _EXTRACTED)})")
    (scratch / _ARCHIVE).unlink()
    for item in extracted.iterdir():
        os.replace(item, scratch / item.name)
    shutil.rmtree(scratch / _EXTRACTED)


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") if names else "nothing"


def voc12_files(root: Path, split: str, *, aug: bool = False, download: bool = False) -> list[tuple[Path, Path]]:
    """``(JPEGImages/<id>.jpg, <masks>/<id>.png)`` pairs for the ids of a VOC split list.

    Args:
        root: ``VOCdevkit`` (the folder that contains ``VOC2012``) or ``VOC2012`` itself.
        split: a list in ``ImageSets/Segmentation`` (``"train"``, ``"val"``, ``"trainval"``).
        aug: masks from ``SegmentationClassAug``; split ``"train"`` reads ``train_aug.txt``.
        download: fetch the VOC 2012 archive when ``root`` has no VOC data.
    """
    root = Path(root).expanduser()
    if download and not _voc_nearby(root):
        download_voc2012(root)
    voc = find_voc2012(root)
    masks = voc / ("SegmentationClassAug" if aug else "SegmentationClass")
    if not masks.is_dir():
        fix = (
            "unpack the SBD-augmented masks (SegmentationClassAug.zip, 12031 PNGs) there; they have no official "
            "download URL"
            if aug
            else "extract the VOC 2012 trainval archive again or pass download=True (--download)"
        )
        raise DataError(f"VOC folder {voc} has no {masks.name} folder: expected {masks}/*.png; {fix}")
    list_name = "train_aug" if aug and split == "train" else split
    hint = (
        "train_aug.txt (10582 ids) comes with SegmentationClassAug; put it in ImageSets/Segmentation"
        if list_name == "train_aug"
        else "use a split whose list exists (train, val) or restore the list"
    )
    ids = read_id_list(voc / "ImageSets" / "Segmentation" / f"{list_name}.txt", hint=hint)
    images = index_by_stem(voc / "JPEGImages", _IMAGE_SUFFIXES)
    return [(images.get(i, voc / "JPEGImages" / f"{i}.jpg"), masks / f"{i}.png") for i in ids]
