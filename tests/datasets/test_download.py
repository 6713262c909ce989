"""The VOC download: a connection dropped half-way leaves nothing behind, and the next try succeeds.

A local HTTP server on 127.0.0.1 serves a tiny archive laid out as VOC's
(``VOCdevkit/VOC2012/...``); while the test has it drop connections, it announces the whole
archive, sends half of it and closes the connection.
"""

import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from ldwseg.datasets import voc
from ldwseg.errors import DataError


def voc_archive() -> bytes:
    """A tar of ``VOCdevkit/VOC2012`` with two images, their masks and the split lists."""
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {}
    for name in ("2007_000001", "2007_000002"):
        image, mask = io.BytesIO(), io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(image, format="JPEG")
        Image.fromarray(rng.integers(0, 21, (40, 48), dtype=np.uint8)).save(mask, format="PNG")
        files[f"JPEGImages/{name}.jpg"], files[f"SegmentationClass/{name}.png"] = image.getvalue(), mask.getvalue()
    files["ImageSets/Segmentation/train.txt"] = b"2007_000001\n"
    files["ImageSets/Segmentation/val.txt"] = b"2007_000002\n"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"VOCdevkit/VOC2012/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


class _Server(http.server.ThreadingHTTPServer):
    body: bytes
    dropping = True
    requests = 0


class _DroppingHandler(http.server.BaseHTTPRequestHandler):
    """Serves the archive at any path; while the server is ``dropping``, stops half-way and closes the connection."""

    server: _Server

    def _headers(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-tar")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()

    def do_HEAD(self) -> None:
        self._headers()

    def do_GET(self) -> None:
        self.server.requests += 1
        self._headers()
        body = self.server.body
        if self.server.dropping:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, *args) -> None:  # the test's output stays quiet
        pass


@pytest.fixture
def archive_url() -> Iterator[tuple[str, str, _Server]]:
    """The URL of the archive on a local server, its MD5 sum, and the server."""
    server = _Server(("127.0.0.1", 0), _DroppingHandler)
    server.body = voc_archive()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/VOCtrainval_11-May-2012.tar"
        yield url, hashlib.md5(server.body).hexdigest(), server
    finally:
        server.shutdown()
        server.server_close()


def test_a_download_dropped_half_way_leaves_nothing_and_the_next_one_succeeds(tmp_path, archive_url, monkeypatch):
    url, md5, server = archive_url
    monkeypatch.setattr(voc, "VOC2012_URLS", (url,))
    monkeypatch.setattr(voc, "VOC2012_MD5", md5)
    root = tmp_path / "VOCdevkit"

    with pytest.raises(DataError, match=rf"could not download VOC 2012 \({url}: .*\); download .* by hand"):
        voc.voc12_files(root, "train", download=True)
    assert server.requests > 0
    assert sorted(p.name for p in root.iterdir()) == []  # no partial tree, archive or hidden temporary folder

    server.dropping = False
    pairs = voc.voc12_files(root, "train", download=True)  # the same call again
    assert sorted(p.name for p in root.iterdir()) == ["VOC2012"]  # the archive and its extraction are gone
    voc2012 = root / "VOC2012"
    assert pairs == [(voc2012 / "JPEGImages" / "2007_000001.jpg", voc2012 / "SegmentationClass" / "2007_000001.png")]
    assert sorted(p.name for p in voc2012.iterdir()) == ["ImageSets", "JPEGImages", "SegmentationClass"]

    requests = server.requests
    voc.voc12_files(root, "val", download=True)  # present: nothing is fetched again
    assert server.requests == requests


def test_an_archive_without_voc2012_is_refused_and_leaves_nothing(tmp_path, archive_url):
    url, _, server = archive_url
    server.dropping = False
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("something/else.txt")
        tar.addfile(info, io.BytesIO(b""))
    server.body = archive.getvalue()
    root = tmp_path / "VOCdevkit"
    md5 = hashlib.md5(server.body).hexdigest()
    with pytest.raises(DataError, match="the archive holds no VOCdevkit/VOC2012 folder"):
        voc.download_voc2012(root, urls=[url], md5=md5)
    assert list(root.iterdir()) == []
