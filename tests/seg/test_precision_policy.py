"""``predict`` and ``evaluate`` run a checkpoint's network alike: in the run's ``train.amp``, or in ``--amp``.

A tiny run trained in bfloat16 for 12 steps labels three classes with small margins, so
some of its pixels lie within bfloat16's rounding of a tie (1329 of the 16 validation
images' 262144 when measured): float32 labels those otherwise, and the test checks that it
does, else it could not tell the precisions apart.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from run_checks import cli

from ldwseg.datasets import build_dataset, eval_transform
from ldwseg.seg import evaluate as evaluate_module
from ldwseg.seg.evaluate import evaluate_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("bf16") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LDWSEG_DATA", str(data_dir))
        run = cli("train", "--out", out, "--epochs", "2", "--device", "cpu", "--amp", "bf16", "--set",
                  "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32", "--set",
                  "train.max_steps_per_epoch=6", "--set", "optim.lr=0.02")  # fmt: skip
    assert run.code == 0, run.err
    return out / "best.safetensors"


def evaluated_labels(checkpoint, monkeypatch, **options) -> tuple[dict, list[np.ndarray]]:
    """``evaluate_checkpoint``'s result, and the argmax of every image's logits that it scored, in order."""
    seen: list[np.ndarray] = []
    update = evaluate_module.SegmentationMetrics.update

    def recording(self, logits, target):
        seen.extend(logits.argmax(1).cpu().numpy())
        return update(self, logits, target)

    with monkeypatch.context() as patch:
        patch.setattr(evaluate_module.SegmentationMetrics, "update", recording)
        result = evaluate_checkpoint(checkpoint, device="cpu", **options)
    return result, seen


def predicted_labels(checkpoint, images, out, *extra) -> list[np.ndarray]:
    run = cli("predict", checkpoint, *images, "--out", out, "--device", "cpu", "--no-overlay", *extra)
    assert run.code == 0, run.err
    return [np.asarray(Image.open(out / f"{path.stem}_mask.png")) for path in images]


def test_predict_masks_are_the_argmax_evaluate_scores_in_the_run_precision_or_the_one_asked(
    bf16_checkpoint, tmp_path, monkeypatch
):
    images = [image for image, _ in build_dataset("synthetic", None, "val", transform=eval_transform()).files]
    result, bf16 = evaluated_labels(bf16_checkpoint, monkeypatch)
    assert result["amp"] == "bf16" and len(bf16) == len(images) == result["images"]
    off_result, float32 = evaluated_labels(bf16_checkpoint, monkeypatch, amp="off")
    assert off_result["amp"] == "off"
    assert sum(int((a != b).sum()) for a, b in zip(bf16, float32)) > 0  # the precisions label differently

    for got, want in zip(predicted_labels(bf16_checkpoint, images, tmp_path / "run_amp"), bf16, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(predicted_labels(bf16_checkpoint, images, tmp_path / "off", "--amp", "off"), float32):
        np.testing.assert_array_equal(got, want)


def test_predict_runs_the_model_under_the_autocast_it_names(bf16_checkpoint, tmp_path):
    """The mask of one image against the model run by hand under bfloat16 autocast."""
    from ldwseg.engine.checkpoints import load_run_model

    rgb = np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "noise.png")
    model, _, _ = load_run_model(bf16_checkpoint, "cpu", task="seg")
    image, _ = eval_transform()(rgb, np.zeros(rgb.shape[:2], dtype=np.int64))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = model(image[None]).float().argmax(1)[0].numpy()
    (got,) = predicted_labels(bf16_checkpoint, [tmp_path / "noise.png"], tmp_path / "masks")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("amp, words", [("fp16", "--amp fp16 needs a CUDA device"), ("fp64", "choose one of off")])
def test_an_amp_the_machine_cannot_run_is_one_line(bf16_checkpoint, tmp_path, command, amp, words):
    if amp == "fp16" and torch.cuda.is_available():
        pytest.skip("fp16 runs on this machine's CUDA device")
    args = [bf16_checkpoint, tmp_path] if command == "predict" else [bf16_checkpoint]
    run = cli(command, *args, "--device", "cpu", "--amp", amp)
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], run.err
