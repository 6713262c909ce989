"""create_model, save_pretrained / from_pretrained / push_to_hub, and shared folders in the commands."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ldwseg
from ldwseg.cli import app
from ldwseg.errors import CheckpointError, ConfigError
from ldwseg.io.weights import MODEL_FILE
from ldwseg.models import UNet
from ldwseg.models.sharing import CARD_FILE, HubError


def test_list_models_names_the_unet_and_the_smp_networks():
    assert ldwseg.list_models()[0] == "unet" and "smp-unet" in ldwseg.list_models()


@pytest.mark.parametrize("options", [{"down": "maxpool", "up": "deconv"}, {}], ids=["max", "default"])
def test_a_created_model_round_trips_through_a_folder(tmp_path, options):
    model = ldwseg.create_model("unet", classes=4, base_width=8, depth=2, class_names=list("abcd"), **options)
    x = torch.randn(2, 3, 35, 42)
    model.eval()
    expected = model(x)
    folder = model.save_pretrained(tmp_path / "shared")
    assert sorted(p.name for p in folder.iterdir()) == sorted([MODEL_FILE, CARD_FILE])
    loaded = ldwseg.from_pretrained(folder)
    assert not loaded.training and type(loaded) is UNet
    torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
    card = (folder / CARD_FILE).read_text()
    assert card.startswith("---\nlibrary_name: ldwseg") and "4 classes: a, b, c, d" in card
    again = loaded.save_pretrained(tmp_path / "again")  # a loaded model saves the same weights
    torch.testing.assert_close(ldwseg.from_pretrained(again)(x), expected, rtol=0, atol=0)


def test_gray_images_make_a_one_channel_network():
    model = ldwseg.create_model("unet", classes=2, in_channels=1, base_width=4, depth=2)
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 2, 16, 16)


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="unknown option.*widht"):
        ldwseg.create_model("unet", classes=2, widht=8)
    with pytest.raises(ConfigError, match="model.arch"):
        ldwseg.create_model("segformer", classes=2)
    with pytest.raises(ConfigError, match="class_names lists 1 names for 2 classes"):
        ldwseg.create_model("unet", classes=2, class_names=["x"])


def test_a_network_built_by_hand_says_how_to_share_it(tmp_path):
    with pytest.raises(CheckpointError, match="create_model"):
        UNet(3, 2, base_width=4, depth=2).save_pretrained(tmp_path)


def test_a_folder_without_weights_and_an_unknown_id_fail_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no model.safetensors"):
        ldwseg.from_pretrained(tmp_path / "empty")
    with pytest.raises(HubError, match="could not load 'nobody/nothing' from the Hugging Face Hub"):
        ldwseg.from_pretrained("nobody/nothing")
    with pytest.raises(CheckpointError, match="does not exist"):
        ldwseg.from_pretrained(tmp_path / "missing.safetensors")


def test_push_to_hub_failures_are_one_line(tmp_path, monkeypatch):
    class Offline:
        def __init__(self, token=None):
            pass

        def create_repo(self, *args, **kwargs):
            raise ConnectionError("Name or service not known")

    monkeypatch.setattr("huggingface_hub.HfApi", Offline)
    model = ldwseg.create_model("unet", classes=2, base_width=4, depth=2)
    with pytest.raises(HubError, match="could not push to the Hub repository 'me/model': ConnectionError"):
        model.push_to_hub("me/model")


def test_push_to_hub_uploads_the_saved_folder(monkeypatch):
    uploaded = {}

    class Hub:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=False, exist_ok=False):
            uploaded["repo"] = repo_id

        def upload_folder(self, *, repo_id, folder_path, commit_message):
            uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr("huggingface_hub.HfApi", Hub)
    url = ldwseg.create_model("unet", classes=2, base_width=4, depth=2).push_to_hub("me/model")
    assert uploaded == {"repo": "me/model", "files": sorted([MODEL_FILE, CARD_FILE])} and url.endswith("/abc")


@pytest.mark.slow
def test_the_commands_take_a_shared_folder(tmp_path, private_data):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "train", "--out", str(out), "--epochs", "1", "--set", "model.base_width=4", "--set", "model.depth=2",
        "--set", "data.crop_size=32", "--set", "train.max_steps_per_epoch=2", "--device", "cpu",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = ldwseg.from_pretrained(out / "best.safetensors").save_pretrained(tmp_path / "shared")
    scores = []
    for source in (out / "best.safetensors", folder):
        report = runner.invoke(app, ["evaluate", str(source), "--json"])
        assert report.exit_code == 0, report.output
        scores.append(json.loads(report.output.strip().splitlines()[-1])["miou"])
    assert scores[0] == scores[1]
    assert "synthetic" in (folder / CARD_FILE).read_text() and "miou" in (folder / CARD_FILE).read_text()
    image = sorted((private_data / "synthetic" / "VOC2012" / "JPEGImages").iterdir())[0]
    predicted = runner.invoke(app, ["predict", str(folder), str(image), "--out", str(tmp_path / "p")])
    assert predicted.exit_code == 0, predicted.output
    assert (tmp_path / "p" / f"{image.stem}_mask.png").is_file()
