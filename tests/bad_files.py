"""Broken and hand-made image files for the tests of readers and commands."""

import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from skimage import data


def png_bytes(width: int, height: int, depth: int, colour_type: int, rows: bytes) -> bytes:
    """A minimal PNG file written chunk by chunk (so that the header can lie about the size)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def make_bad(kind: str, folder: Path) -> Path:
    """A file (or folder) of one broken kind, under ``folder``."""
    path = folder / {"directory": "dir.png", "truncated_jpeg": "cut.jpg"}.get(kind, f"{kind}.png")
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("this is not a picture\n")
    elif kind == "truncated_jpeg":
        Image.fromarray(data.astronaut()[:128, :128]).save(folder / "whole.jpg", quality=90)
        whole = (folder / "whole.jpg").read_bytes()
        (folder / "whole.jpg").unlink()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "truncated_png":
        Image.fromarray(data.astronaut()[:64, :64]).save(path)
        path.write_bytes(path.read_bytes()[:-400])
    elif kind == "one_pixel":
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    elif kind == "decompression_bomb":  # a header claiming 20000 x 20000 pixels
        path.write_bytes(png_bytes(20000, 20000, 8, 0, b""))
    elif kind == "float_tiff":
        path = folder / "f.tif"
        Image.fromarray(np.zeros((4, 4), np.float32)).save(path)
    elif kind == "rgb16_tiff":
        path = folder / "rgb16.tif"
        tifffile.imwrite(path, np.full((4, 5, 3), 1000, np.uint16))
    elif kind == "rgb16_png":
        rows = b"".join(b"\0" + np.full(15, 1000, ">u2").tobytes() for _ in range(4))
        path.write_bytes(png_bytes(5, 4, 16, 2, rows))
    elif kind != "missing":
        raise AssertionError(kind)
    return path
