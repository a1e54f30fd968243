"""One image file: is it an image, is it whole, and how does it become RGB?

`tf.io.decode_image` stops a whole training run on the first file it cannot decode, so
every file is checked here, when a folder is listed, before it can reach the pipeline:

- files Pillow does not recognise are not images (skipped and counted);
- damaged or truncated files, images under `MIN_SIDE` pixels a side and images so large
  that they could be decompression bombs are refused (skipped and counted, with the reason);
- JPEGs (RGB or grey) that end properly and PNGs whose chunks pass their checksums are
  decoded by TensorFlow, which turns grey, palette and RGBA (alpha dropped, as the course's
  `ImageDataGenerator` does) into RGB and 16-bit PNGs into 8 bits correctly;
- everything else that Pillow reads whole (CMYK JPEGs, palette and 1-bit BMPs, which
  TensorFlow misreads or refuses, GIF, TIFF, WebP, ...) is decoded by Pillow instead.

Checking reads each file once (a few milliseconds); results are remembered per process
by path, size and modification time. Files are only ever read.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# The formats keras.utils.image_dataset_from_directory reads by extension. A file with one
# of these extensions that does not read is "damaged"; any other unreadable file is "not
# an image".
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Smaller than this, an image holds too little to resize into a training image.
MIN_SIDE = 8
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_CHECKS: dict[tuple, ImageCheck] = {}
_CHECKS_LOCK = threading.Lock()
_MAX_REMEMBERED = 200_000


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one file."""

    usable: bool
    # Why it was refused, or how it is converted to 8-bit RGB ("" for a plain RGB image).
    reason: str = ""
    is_image: bool = True
    # True when TensorFlow would misread or refuse the file: Pillow decodes it instead.
    with_pillow: bool = False


def max_pixels() -> int:
    """Images with more pixels are refused as possible decompression bombs (LAB_MAX_IMAGE_PIXELS)."""
    return int(os.environ.get("LAB_MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS))


def check_image(path: Path) -> ImageCheck:
    """The verdict on `path`, remembered while the file keeps its size and modification time."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, max_pixels())
    with _CHECKS_LOCK:
        known = _CHECKS.get(key)
    if known is not None:
        return known
    verdict = _inspect(path)
    with _CHECKS_LOCK:
        if len(_CHECKS) >= _MAX_REMEMBERED:
            _CHECKS.clear()
        _CHECKS[key] = verdict
    return verdict


def _refuse(reason: str) -> ImageCheck:
    return ImageCheck(usable=False, reason=reason)


def _inspect(path: Path) -> ImageCheck:
    try:
        # Pillow warns above MAX_IMAGE_PIXELS; the size is checked below against our own limit.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                refusal = _refuse_size(image.size)
                if refusal:
                    return refusal
                return _check_content(path, image)
    except Image.DecompressionBombError:
        return _refuse(f"refused: so many pixels that it could be a decompression bomb (over {max_pixels():,})")
    except UnidentifiedImageError:
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return _refuse("damaged: not readable as an image")
        return ImageCheck(usable=False, reason="not an image", is_image=False)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncation and bad checksums as OSError or SyntaxError.
        return _refuse(f"damaged or truncated ({exc})")


def _refuse_size(size: tuple[int, int]) -> ImageCheck | None:
    width, height = size
    if min(width, height) < MIN_SIDE:
        return _refuse(f"too small to use ({width}x{height} px; at least {MIN_SIDE} px a side)")
    if width * height > max_pixels():
        return _refuse(
            f"refused: {width}x{height} px is over {max_pixels():,} pixels and could be a decompression bomb"
        )
    return None


def _check_content(path: Path, image: Image.Image) -> ImageCheck:
    if image.format == "PNG":
        note = _conversion_note(image.mode, _png_bit_depth(path))
        # verify() checks every chunk's CRC without decompressing: it catches truncation
        # and damage in a fraction of a millisecond.
        image.verify()
        return ImageCheck(usable=True, reason=note)
    if image.format == "JPEG" and image.mode in ("RGB", "L") and _ends_with_eoi(path):
        return ImageCheck(usable=True, reason=_conversion_note(image.mode, 8))
    # CMYK JPEGs, JPEGs with data after their end, BMP, GIF, TIFF, WebP...: rare in
    # practice, so they are decoded whole now, and by Pillow later.
    mode = image.mode
    image.load()
    note = _conversion_note(mode, 16 if mode in _SIXTEEN_BIT_MODES else 8)
    if image.format not in ("JPEG", "PNG", "GIF", "BMP"):
        note = f"{image.format} read with Pillow" + (f"; {note}" if note else "")
    return ImageCheck(usable=True, reason=note, with_pillow=True)


def _conversion_note(mode: str, bit_depth: int) -> str:
    if bit_depth == 16:
        return "16-bit → 8-bit RGB"
    if mode in ("RGBA", "LA", "PA") or mode.endswith("A"):
        return "RGBA → RGB (alpha dropped, as ImageDataGenerator does)"
    if mode in ("L", "1") or mode in _SIXTEEN_BIT_MODES:
        return "grayscale → RGB"
    if mode == "P":
        return "palette → RGB"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return f"{mode} → RGB"
    return ""


def _png_bit_depth(path: Path) -> int:
    # IHDR follows the 8-byte signature, 4-byte length and 4-byte type: width, height, depth.
    with open(path, "rb") as file:
        header = file.read(25)
    return header[24] if len(header) == 25 else 8


def _ends_with_eoi(path: Path) -> bool:
    # A JPEG cut short loses its end-of-image marker (FF D9), and TensorFlow refuses it.
    with open(path, "rb") as file:
        file.seek(-2, os.SEEK_END)
        return file.read(2) == b"\xff\xd9"


# -- decoding with Pillow -----------------------------------------------------------------------
def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, the way the course's loader sees it: alpha dropped, grey repeated, 16 bits scaled."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        # Pillow's own conversion clips 16-bit values at 255 (a white image); scale instead.
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) > 255:
            values = values / 257.0
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_rgb(path: str | Path) -> np.ndarray:
    """The first frame of an image file as a uint8 [H, W, 3] array."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            return np.asarray(to_rgb(image))
