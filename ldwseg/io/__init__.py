"""Image files for reconstruction: read any common image as floats, write it back losslessly.

Unlike :func:`ldwseg.datasets.reading.read_image`, which turns every file into 8-bit RGB
for segmentation, this module keeps what a reconstruction must reproduce: the channels
(gray, gray + alpha, RGB, RGBA), the bit depth (8 or 16) and the size.

Pixel layout used here and by :mod:`ldwseg.recon` (file mode -> array channels ``C``,
mode written back, bit depth):

* ``1``, ``L`` -> 1 channel, written as ``L``, 8 bits;
* ``I;16`` (and ``I;16B``, ``I;16L``, ``I;16N``; ``I`` when its values fit in 16 bits)
  -> 1 channel, written as ``I;16``, 16 bits;
* ``LA`` -> 2 channels, written as ``LA``, 8 bits;
* ``RGB`` (and ``CMYK``, ``YCbCr``, ``RGBX``, ...) -> 3 channels, written as ``RGB``, 8 bits;
* ``RGBA`` -> 4 channels, written as ``RGBA``, 8 bits;
* ``P``, ``PA`` (palette) -> ``RGB``, or ``RGBA`` when the palette has transparency.

Values are ``stored / (2**bit_depth - 1)``, so an 8-bit file reads as multiples of 1/255
and :func:`save_image` writes ``round(clip(v, 0, 1) * (2**bit_depth - 1))``: reading a
file and saving its array reproduces the file's pixels exactly.

Size limit: :func:`load_image` refuses images of more than ``max_pixels`` pixels
(:data:`DEFAULT_MAX_PIXELS`, 16384 x 16384) from the file header, before decoding. It
replaces Pillow's decompression-bomb check, which warns above about 89 million pixels and
refuses above 179 million: the two would otherwise warn about, or refuse, images that
ldwseg accepts and processes in tiles.

Limitations: Pillow decodes 16-bit *colour* PNG/TIFF files to 8 bits, so they are refused
rather than silently truncated; floating-point TIFFs are refused too. Multi-frame files
(GIF, TIFF stacks) are read as their first frame. Metadata (EXIF, ICC profiles) is not
copied to the output.
"""

from .image_read import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from .image_write import SAVE_FORMATS, output_format, save_image, save_image_stored, write_atomic

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SAVE_FORMATS",
    "LoadedImage",
    "load_image",
    "output_format",
    "save_image",
    "save_image_stored",
    "write_atomic",
]
