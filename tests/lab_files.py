"""Image files and zips for the download and upload tests, built in memory.

Every image is a flat colour whose dominant channel names its class (class 0 red, 1 green,
2 blue), so a decoded image can be traced back to its class whatever format it went through.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = ((200, 40, 30), (30, 190, 40), (40, 50, 210))


def rgb_array(label: int, size: tuple[int, int] = (24, 24), seed: int = 0) -> np.ndarray:
    width, height = size
    image = np.empty((height, width, 3), dtype=np.int16)
    image[...] = COLOURS[label % 3]
    noise = np.random.default_rng(seed).integers(-8, 9, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def image_bytes(
    label: int, mode: str = "RGB", fmt: str = "PNG", size: tuple[int, int] = (24, 24), seed: int = 0
) -> bytes:
    """One image of `label` in `mode` (RGB, RGBA, L, P, 1, CMYK, I;16, RGB16) saved as `fmt`."""
    rgb = rgb_array(label, size, seed)
    if mode == "RGB16":
        # Pillow cannot write 16-bit RGB PNGs; write the PNG by hand.
        return png16_rgb(rgb.astype(np.uint16) * 257)
    if mode == "I;16":
        grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey)
    elif mode == "RGBA":
        image = Image.fromarray(rgb).convert("RGBA")
        alpha = np.full(rgb.shape[:2], 255, np.uint8)
        alpha[: rgb.shape[0] // 2] = 0  # the top half transparent, the colour kept underneath
        image.putalpha(Image.fromarray(alpha))
    elif mode == "P":
        image = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    else:
        image = Image.fromarray(rgb).convert(mode)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def png16_rgb(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG from a uint16 [H, W, 3] array."""
    height, width, _ = values.shape
    rows = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def bomb_png(side: int = 30_000) -> bytes:
    """A valid PNG header claiming side x side pixels: Pillow calls that a decompression bomb."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def class_files(
    classes: Iterable[str], count: int, prefix: str = "", fmt: str = "PNG", mode: str = "RGB", seed: int = 0
) -> dict[str, bytes]:
    """{"<prefix><class>/<class>_<i>.<ext>": image} for `count` images of each class."""
    ext = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif"}[fmt]
    files = {}
    for label, name in enumerate(classes):
        for i in range(count):
            files[f"{prefix}{name}/{name}_{i:02d}.{ext}"] = image_bytes(label, mode, fmt, seed=seed + 100 * label + i)
    return files


def zip_bytes(files: Mapping[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_with_entry(files: Mapping[str, bytes], info: zipfile.ZipInfo, data: bytes) -> bytes:
    """A zip of `files` plus one entry written exactly as `info` says (links, absolute names)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        archive.writestr(info, data)
    return out.getvalue()


def write_files(root: Path, files: Mapping[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under root with its size, modification time and bytes: to prove nothing changed."""
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): (
            path.is_dir(),
            path.stat().st_mtime_ns,
            path.read_bytes() if path.is_file() else b"",
        )
        for path in sorted(root.rglob("*"))
    }
