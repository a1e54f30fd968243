"""One image file: is it an image, is it whole, and how does it become RGB?

`tf.io.decode_image` stops a whole training run on the first file it cannot decode, so
every file is checked here, when a folder is listed, before it can reach the pipeline:

- only the lab's own formats (`LAB_FORMATS`: JPEG, PNG, GIF, BMP, WebP, TIFF) are ever opened:
  Pillow would otherwise hand an EPS to Ghostscript, a program of its own, and a looping
  one keeps it busy for ever. Other image types are skipped and counted ("not an image type
  the lab reads"), files of no image type at all as "not an image";
- damaged or truncated files, images under `MIN_SIDE` pixels a side and images so large
  that they could be decompression bombs are refused (skipped and counted, with the reason).
  Every image is decoded whole, as training will: a PNG with right checksums can still hold
  corrupt compressed data, and a JPEG can hold garbage that Pillow's libjpeg shrugs off but
  TensorFlow's refuses, so JPEGs must also parse marker by marker to their end (`_jpeg_ending`);
- JPEGs (RGB or grey) that end properly and PNGs are decoded by TensorFlow, which turns grey,
  palette and RGBA (alpha dropped, as the course's `ImageDataGenerator` does) into RGB and
  16-bit PNGs into 8 bits correctly;
- everything else (CMYK JPEGs, palette and 1-bit BMPs, which TensorFlow misreads or refuses,
  GIF, TIFF, WebP) is decoded by Pillow instead.

Checking reads each file once (a millisecond or two: JPEGs decode at an eighth of their size,
which still reads all their coded data); results are remembered per process by path, size and
modification time. Files are only ever read.
"""

from __future__ import annotations

import math
import os
import re
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
# The only formats Pillow is asked to open, ever: no plugin that runs another program (EPS).
LAB_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
NOT_READ = "not an image type the lab reads"
# A preview decodes at most this many times its size a side (JPEGs at a reduced scale).
PREVIEW_FACTOR = 4
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
            with open_image(path) as image:
                refusal = _refuse_size(image.size)
                if refusal:
                    return refusal
                return _check_content(path, image)
    except PermissionError:
        return _refuse("permission denied")
    except Image.DecompressionBombError:
        return _refuse(f"refused: so many pixels that it could be a decompression bomb (over {max_pixels():,})")
    except UnidentifiedImageError:
        return _unidentified(path)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncation and bad checksums as OSError or SyntaxError.
        return _refuse(f"damaged or truncated ({exc})")


def open_image(path: str | Path) -> Image.Image:
    """`Image.open` for the lab's formats only: an EPS or any other type raises `UnidentifiedImageError`."""
    return Image.open(path, formats=LAB_FORMATS)


def _unidentified(path: Path) -> ImageCheck:
    other = _other_image_type(path)
    if other:
        return _refuse(f"{NOT_READ} ({other})")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _refuse("damaged: not readable as an image")
    return ImageCheck(usable=False, reason="not an image", is_image=False)


def _other_image_type(path: Path) -> str | None:
    """The image type Pillow would take the file for, named from its first bytes or its
    extension; no plugin is asked to open it."""
    by_extension = Image.registered_extensions().get(path.suffix.lower())
    if by_extension not in (None, *LAB_FORMATS):
        return by_extension
    with open(path, "rb") as file:
        prefix = file.read(64)
    Image.init()
    for name, (_, accepts) in Image.OPEN.items():
        # A few plugins accept anything (no check of their own): only a real signature counts.
        if name not in LAB_FORMATS and accepts is not None and _signature_matches(accepts, prefix):
            return name
    return None


def _signature_matches(accepts, prefix: bytes) -> bool:
    try:
        return bool(accepts(prefix))
    except Exception:  # some plugins' checks fail on a few bytes instead of saying no, as Image.open allows
        return False


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
    mode = image.mode
    if image.format == "PNG":
        note = _conversion_note(mode, _png_bit_depth(path))
        # verify() checks every chunk's CRC, as libpng does, but inflates nothing: the pixels
        # are decoded too, for compressed data that is corrupt under a right checksum.
        image.verify()
        with open_image(path) as again:
            again.load()
        return ImageCheck(usable=True, reason=note)
    if image.format == "JPEG":
        return _check_jpeg(path, image)
    # BMP, GIF, TIFF, WebP: rare in practice, decoded whole now, and by Pillow later.
    image.load()
    note = _conversion_note(mode, 16 if mode in _SIXTEEN_BIT_MODES else 8)
    if image.format not in ("JPEG", "PNG", "GIF", "BMP"):
        note = f"{image.format} read with Pillow" + (f"; {note}" if note else "")
    return ImageCheck(usable=True, reason=note, with_pillow=True)


def _check_jpeg(path: Path, image: Image.Image) -> ImageCheck:
    mode = image.mode
    # An eighth of the pixels, but libjpeg still reads and checks every coded bit.
    image.draft(mode, (math.ceil(image.width / 8), math.ceil(image.height / 8)))
    image.load()
    ending = _jpeg_ending(path)
    if ending == "broken":
        return _refuse("damaged or truncated (its data runs past its end)")
    note = _conversion_note(mode, 8)
    if mode in ("RGB", "L") and ending == "whole":
        return ImageCheck(usable=True, reason=note)
    # CMYK JPEGs, and JPEGs with data after their end: decoded by Pillow.
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


# A marker: FF (any number of fill FFs) then a code other than 00, which stuffs a data byte FF.
_MARKER = re.compile(rb"\xff+([^\x00\xff])")
_WITHOUT_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and the restart markers RST0-7
_SOI, _EOI = 0xD8, 0xD9


def _jpeg_ending(path: Path) -> str:
    """ "whole" when the JPEG's segments lead exactly to its end marker (FF D9) at the end of the
    file, "trailing" when data follows that marker, "broken" when a segment runs past the end.

    Why: TensorFlow's libjpeg reads markers as libjpeg does and fails ("jpeg::Uncompress failed")
    where a segment runs past the end of the data, which garbage in the coded data easily
    makes (a stray FF E4 claims a 16 kB segment); Pillow ignores what follows the pixels, so its
    decoding alone cannot tell. A JPEG cut short, which lost its end marker, is broken too.
    """
    data = path.read_bytes()
    if not data.startswith(b"\xff\xd8"):
        return "broken"
    pos = 2
    while True:
        # Coded data and stray bytes between segments are skipped to the next marker, as libjpeg does.
        found = _MARKER.search(data, pos)
        if found is None:
            return "broken"
        marker, pos = found.group(1)[0], found.end()
        if marker == _EOI:
            return "whole" if pos == len(data) else "trailing"
        if marker == _SOI:
            return "broken"
        if marker in _WITHOUT_LENGTH:
            continue
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > len(data):
            return "broken"
        pos += length


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
        with open_image(path) as image:
            return np.asarray(to_rgb(image))


def preview_max_pixels() -> int:
    """Above this many pixels a non-JPEG image is not decoded for a preview (LAB_PREVIEW_MAX_PIXELS)."""
    return int(os.environ.get("LAB_PREVIEW_MAX_PIXELS", 4096 * 4096))


def load_preview(path: str | Path, side: int) -> Image.Image:
    """The first frame as 8-bit RGB, at most `PREVIEW_FACTOR * side` pixels a side.

    A JPEG decodes at a reduced scale (1/2 to 1/8, libjpeg's `draft`), so a 9000-px photo
    never exists whole in memory; other formats are reduced by whole factors right after
    decoding. Either way the resize to `side` that follows handles a small image.
    """
    bound = PREVIEW_FACTOR * side
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with open_image(path) as image:
            if image.format != "JPEG" and image.width * image.height > preview_max_pixels():
                # Only JPEG decodes reduced: a huge PNG or WebP would exist whole in memory for a
                # thumbnail. The strip shows a plain grey tile for it instead (training still reads it).
                return Image.new("RGB", (bound, bound), (128, 128, 128))
            image.draft(image.mode, (bound, bound))
            image.load()  # while the file is open
            rgb = to_rgb(image)
    factors = (math.ceil(rgb.width / bound), math.ceil(rgb.height / bound))
    return rgb.reduce(factors) if max(factors) > 1 else rgb
