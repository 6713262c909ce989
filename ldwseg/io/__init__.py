"""Files: images read and written in their own pixel format, checkpoints, atomic writes.

* :func:`load_image` reads any common image as floats, keeping what a reconstruction
  must reproduce: the channels (gray, gray + alpha, RGB, RGBA), the bit depth (8 or 16)
  and the size; :func:`save_image` writes such an array back losslessly, and
  :func:`write_pil_image` any Pillow image.
* :func:`load_rgb8` reads it as the 8-bit RGB a segmentation model sees (the data sets
  and ``predict``). Both open files with :func:`open_image`, the checks and size limit
  of every reader, which readers that decode on their own use too (label masks, read as
  palette indices).
* :func:`quantize` and :func:`scaled` convert between the floats and the stored integers.
* :func:`atomic_write` and :func:`atomic_folder` make every file ldwseg writes appear
  complete or not at all; :mod:`ldwseg.io.weights` and
  :mod:`ldwseg.io.training_state` hold the checkpoint files.

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
file and saving its array reproduces the file's pixels exactly. :func:`load_rgb8` gives
gray as three equal channels, drops alpha and rounds 16 bits to 8 the same way.

Size limit: :func:`load_image` refuses images of more than ``max_pixels`` pixels
(:data:`DEFAULT_MAX_PIXELS`, 16384 x 16384) from the file header, before decoding. It
replaces Pillow's decompression-bomb check, which warns above about 89 million pixels and
refuses above 179 million: the two would otherwise warn about, or refuse, images that
ldwseg accepts and processes in tiles. The same limit applies to every reader, so to the
data sets too.

Limitations: Pillow decodes 16-bit *colour* PNG/TIFF files to 8 bits (the high byte of
each sample), so :func:`load_image` refuses them rather than silently truncate them, while
:func:`load_rgb8`, which gives 8 bits anyway, reads those decoded bits; floating-point
TIFFs are refused by both. Multi-frame files (GIF, TIFF stacks) are read as their first
frame. Metadata (EXIF, ICC profiles) is not copied to the output.
"""

from .atomic import atomic_folder, atomic_write
from .image_read import DEFAULT_MAX_PIXELS, LoadedImage, load_image, load_rgb8, open_image
from .image_write import SAVE_FORMATS, output_format, save_image, save_image_stored, write_pil_image
from .pixels import quantize, scaled

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SAVE_FORMATS",
    "LoadedImage",
    "atomic_folder",
    "atomic_write",
    "load_image",
    "load_rgb8",
    "open_image",
    "output_format",
    "quantize",
    "save_image",
    "save_image_stored",
    "scaled",
    "write_pil_image",
]
