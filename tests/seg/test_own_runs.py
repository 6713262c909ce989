"""Your data and your workflow end to end: gray EM stacks, fine-tuning, reports, tiled and TTA evaluation."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch.testing import assert_close
from trees import make_mixed_folder
from typer.testing import CliRunner

import ldwseg
from ldwseg.cli import app
from ldwseg.engine.checkpoints import load_run_model
from ldwseg.inference.tta import TTA, class_scores, parse_tta
from ldwseg.io.weights import read_metadata

runner = CliRunner()
TINY = ["--set", "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32", "--device", "cpu",
        "--set", "train.batch_size=4"]  # fmt: skip


def invoke(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def isbi_folder(shared, root, count: int = 6):
    """The ISBI EM slices as a folder data set: gray images, membranes (255) as class 1, named in classes.txt."""
    src = shared / "isbi_membrane" / "train"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name in sorted(p.name for p in (src / "image").iterdir())[:count]:
        shutil.copy(src / "image" / name, root / "images" / name)
        label = np.asarray(Image.open(src / "label" / name))
        Image.fromarray((label > 127).astype(np.uint8)).save(root / "masks" / name)
    (root / "classes.txt").write_text("cell 40 40 40\nmembrane 255 220 0\n")
    return root


@pytest.mark.slow
def test_gray_em_stacks_train_as_one_channel_images(shared_data, tmp_path, private_data):
    root = isbi_folder(shared_data, tmp_path / "isbi")
    out = tmp_path / "run"
    invoke("train", "--dataset", "folder", "--data-root", root, "--out", out, "--epochs", 1, *TINY,
           "--set", "model.in_channels=1", "--set", "train.max_steps_per_epoch=2")  # fmt: skip
    meta = read_metadata(out / "best.safetensors")
    assert meta["dataset"]["class_names"] == ["cell", "membrane"] and meta["dataset"]["in_channels"] == 1
    model, _, _ = load_run_model(out / "best.safetensors")
    assert next(model.parameters()).shape[1] == 1  # the first conv reads one channel
    report = json.loads(invoke("evaluate", out / "best.safetensors", "--json").strip().splitlines()[-1])
    assert list(report["per_class_iou"]) == ["cell", "membrane"] and "dice" in report
    invoke("predict", out / "best.safetensors", root / "images", "--out", tmp_path / "masks")
    mask = np.asarray(Image.open(tmp_path / "masks" / f"{sorted((root / 'images').iterdir())[0].stem}_mask.png"))
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 1}


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    """A tiny run on a 6-class folder data set with named classes."""
    tmp = tmp_path_factory.mktemp("own")
    root = make_mixed_folder(tmp / "data")
    names = ["background", "disk", "rectangle", "triangle", "ring", "curve"]
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    out = tmp / "run"
    invoke("train", "--dataset", "folder", "--data-root", root, "--out", out, "--epochs", 2, *TINY)
    return out, root, names


@pytest.mark.slow
def test_fine_tuning_from_a_checkpoint_of_another_class_count(run, tmp_path):
    out, root, names = run
    three = tmp_path / "three"
    (three / "images").mkdir(parents=True)
    (three / "masks").mkdir()
    for image in (root / "images").iterdir():
        shutil.copy(image, three / "images" / image.name)
        mask = np.asarray(Image.open(root / "masks" / image.name))
        Image.fromarray(np.where(mask == 255, 255, np.minimum(mask, 2)).astype(np.uint8)).save(
            three / "masks" / image.name
        )
    tuned = tmp_path / "tuned"
    result = runner.invoke(app, [str(a) for a in (
        "train", "--dataset", "folder", "--data-root", three, "--set", "data.num_classes=3", "--out", tuned,
        "--epochs", 1, "--init-from", out / "best.safetensors", *TINY, "--set", "train.max_steps_per_epoch=1",
        "--set", "optim.lr=1e-12",
    )])  # fmt: skip
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("initialised from"))
    assert (
        "not loaded (left as initialised): head.weight (shape (6, 4, 1, 1) in the checkpoint, (3, 4, 1, 1) here)"
        in line
    )
    before, _, _ = load_run_model(out / "best.safetensors")
    after, _, _ = load_run_model(tuned / "last.safetensors")
    for (name, a), (_, b) in zip(before.state_dict().items(), after.state_dict().items(), strict=True):
        if not name.startswith("head") and "running" not in name and "num_batches" not in name:
            assert_close(a, b, rtol=0, atol=1e-6, msg=name)  # lr 1e-12: the loaded weights stay


@pytest.mark.slow
def test_the_report_and_the_json_hold_the_confusion_matrix(run, tmp_path):
    out, _, names = run
    report = json.loads(
        invoke("evaluate", out / "best.safetensors", "--json", "--report", tmp_path / "r").splitlines()[-1]
    )
    confusion = np.array(report["confusion"])
    assert confusion.shape == (6, 6) and list(report["per_class_iou"]) == names
    accuracy = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    present = confusion.sum(axis=1) > 0
    assert report["mean_acc"] == pytest.approx(accuracy[present].mean())
    with (tmp_path / "r" / "per_class.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == names
    assert [int(r["pixels"]) for r in rows] == confusion.sum(axis=1).tolist()
    assert (tmp_path / "r" / "confusion.png").stat().st_size > 0


def test_tiled_evaluation_equals_whole_images_and_flip_tta_averages_probabilities(tmp_path):
    """A random network (its predictions vary across the image) shared as a folder, evaluated three ways."""
    torch.manual_seed(0)
    names = ["background", "disk", "rectangle", "triangle", "ring", "curve"]
    model = ldwseg.create_model("unet", classes=6, class_names=names, base_width=8, depth=2)
    with torch.no_grad():  # no bias to favour one class: the features decide, and they vary
        model.head.bias.zero_()
    shared = model.save_pretrained(tmp_path / "random")
    large = make_mixed_folder(tmp_path / "large", sizes=[(200, 300), (180, 260)], seed=3)
    (large / "classes.txt").write_text("\n".join(names) + "\n")
    on_large = ("evaluate", shared, "--json", "--dataset", "folder", "--data-root", large)
    whole = json.loads(invoke(*on_large).splitlines()[-1])
    assert (np.array(whole["confusion"]).sum(axis=0) > 0).sum() >= 2  # several classes predicted
    tiled = json.loads(invoke(*on_large, "--tile", 140).splitlines()[-1])
    # the tiling of predict: equal to the whole image up to float rounding, which differs between window and
    # whole-image shapes and can flip a random network's near-ties (a handful of pixels here)
    moved = np.abs(np.array(tiled["confusion"]) - np.array(whole["confusion"])).sum() / 2
    assert tiled["tile"] == 140 and moved <= 1e-4 * np.array(whole["confusion"]).sum()
    flipped = json.loads(invoke(*on_large, "--tta", "flip").splitlines()[-1])
    assert flipped["tta"] == "flip" and flipped["confusion"] != whole["confusion"]


def test_tta_scores_are_the_mean_of_the_augmented_probabilities():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 12, 16)
    scores = class_scores(net, x, tta=TTA(flip=True))
    expected = (net(x).softmax(1) + net(x.flip(-1)).softmax(1).flip(-1)) / 2
    assert_close(scores, expected)
    assert class_scores(net, x) is not None and torch.equal(class_scores(net, x), net(x))
    assert parse_tta("flip") == TTA(flip=True) and parse_tta(None) == TTA()
    with pytest.raises(Exception, match="expected 'flip' and/or scale factors"):
        parse_tta("mirror")
