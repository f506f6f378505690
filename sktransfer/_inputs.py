"""Turn what users pass as ``X`` into a lazily decoded sequence of images.

Knows nothing about models. Every accepted form ends up as a (C, H, W) torch
tensor, uint8 (from files, PIL images and integer arrays) or float32 in [0, 1]
(from float arrays and tensors), with the channel count the backbone wants, so
the same image gives the same tensor whatever container it came in.

Accepted forms
--------------
- a sequence (list, tuple, 1-D object array, pandas Series) of paths (str or
  ``os.PathLike``), of PIL images, of arrays (H, W) / (H, W, C) or of tensors
  (C, H, W);
- a numpy array (N, H, W) or (N, H, W, C) with C in {1, 3, 4};
- a torch tensor (N, C, H, W) with C in {1, 3, 4} or (N, H, W);
- 2-D rows of flattened pixels (N, H*W*C), numpy or pandas, given
  ``image_shape``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import struct
from pathlib import Path

import numpy as np
import torch

from ._files import file_digest

_CHANNELS = (1, 3, 4)


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded.

    ``reason`` says which file and why, without the advice on what to do.
    """

    def __init__(self, reason, advice=""):
        # One-argument construction must work: torch's DataLoader re-raises
        # an error from a worker process as ``type(exc)(message)``.
        super().__init__(f"{reason} {advice}".rstrip())
        self.reason = reason


class ImageSequence:
    """A sequence of images decoded on access; ``len``, ``[i]`` and ``key(i)``.

    ``self[i]`` returns a (channels, H, W) tensor. ``key(i)`` is a digest of
    the image's content (file bytes for paths, pixels otherwise), used by the
    feature cache.
    """

    def __init__(self, items, kind, *, channels=3, name="X"):
        self._items = items
        self.kind = kind
        self.channels = channels
        self.name = name

    def __len__(self):
        return len(self._items)

    def __getitem__(self, i):
        item = self._items[i]
        where = f"{self.name}[{i}]"
        if self.kind == "path":
            image = _load_path(item, i, self.name)
        elif self.kind == "pil":
            image = _pil_to_tensor(item, where)
        else:  # "hwc": an array (H, W, C); "chw": a tensor or array (C, H, W)
            image = _array_to_tensor(
                item, channels_last=self.kind == "hwc", where=where
            )
        if image.shape[1] == 0 or image.shape[2] == 0:
            raise ValueError(
                f"{where} is an empty image of {image.shape[1]} x "
                f"{image.shape[2]} pixels; every image needs at least 1 x 1 pixel."
            )
        return convert_channels(image, self.channels)

    def key(self, i):
        item = self._items[i]
        if self.kind == "path":
            return file_digest(item, b"bytes:")
        h = hashlib.blake2b(digest_size=16)
        # Hash the canonical decoded tensor so a PIL image, a uint8 array and
        # a tensor of the same pixels share a key.
        image = self[i].contiguous()
        h.update(f"{tuple(image.shape)}:{image.dtype}:".encode())
        h.update(image.numpy().tobytes())
        return h.hexdigest()

    def subset(self, indices):
        items = [self._items[i] for i in indices]
        return ImageSequence(items, self.kind, channels=self.channels, name=self.name)


def as_image_sequence(X, *, image_shape=None, channels=3, name="X"):
    """Validate ``X`` and wrap it as an :class:`ImageSequence`.

    Raises ``TypeError`` for unsupported containers and ``ValueError`` for
    empty input, wrong dimensionality, bad channel counts or pixel ranges.
    """
    if isinstance(X, ImageSequence):
        return X
    X = _unwrap_pandas(X, image_shape, name)
    if isinstance(X, torch.Tensor):
        return _from_tensor(X, image_shape, channels, name)
    if isinstance(X, np.ndarray) and X.dtype != object and X.dtype.kind not in "USO":
        return _from_array(X, image_shape, channels, name)
    if isinstance(X, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a sequence of images, got a single path {str(X)!r}; "
            f"wrap it in a list: [{str(X)!r}]."
        )
    if isinstance(X, np.ndarray):
        X = X.tolist() if X.ndim == 1 else X
    if not hasattr(X, "__len__") or not hasattr(X, "__getitem__"):
        raise TypeError(
            f"{name} must be a sequence of image paths, PIL images or arrays, a "
            f"numpy array, a torch tensor or a pandas Series; got an object of "
            f"type {type(X).__name__}."
        )
    items = list(X)
    _check_not_empty(len(items), name)
    return ImageSequence(
        items, _kind_of_items(items, name), channels=channels, name=name
    )


def _unwrap_pandas(X, image_shape, name):
    module = type(X).__module__
    if not module.startswith("pandas"):
        return X
    if type(X).__name__ == "Series":
        values = X.to_numpy()
        return values
    if type(X).__name__ == "DataFrame":
        if X.shape[1] == 1 and image_shape is None:
            return X.iloc[:, 0].to_numpy()
        return X.to_numpy()
    return X


def _check_not_empty(n, name):
    if n == 0:
        raise ValueError(f"{name} is empty: got 0 images; at least one is required.")


def _check_image_size(size, shape, name):
    if 0 in tuple(size):
        raise ValueError(
            f"{name} holds empty images (shape {tuple(shape)}): height and width "
            f"must be at least 1 pixel."
        )


def _kind_of_items(items, name):
    from PIL import Image

    first = items[0]
    if isinstance(first, (str, os.PathLike)):
        kind = "path"
    elif isinstance(first, Image.Image):
        kind = "pil"
    elif isinstance(first, torch.Tensor):
        kind = "chw"
    elif isinstance(first, np.ndarray):
        kind = "hwc"
    else:
        raise TypeError(
            f"{name}[0] has unsupported type {type(first).__name__}; each image "
            f"must be a path (str or pathlib.Path), a PIL image, a numpy array "
            f"(H, W) or (H, W, C), or a torch tensor (C, H, W)."
        )
    expected = {
        "path": (str, os.PathLike),
        "pil": Image.Image,
        "chw": torch.Tensor,
        "hwc": np.ndarray,
    }[kind]
    for i, item in enumerate(items):
        if not isinstance(item, expected):
            raise TypeError(
                f"{name} mixes image types: {name}[0] is a "
                f"{type(first).__name__} but {name}[{i}] is a "
                f"{type(item).__name__}; pass images of one kind."
            )
    if kind == "path":
        for i, item in enumerate(items):
            if not Path(item).is_file():
                raise FileNotFoundError(
                    f"{name}[{i}]: no such image file: {str(item)!r}."
                )
    return kind


def _from_array(X, image_shape, channels, name):
    if X.ndim == 2:
        X = _unflatten(X, image_shape, name)
    if X.ndim == 3:
        X = X[..., None]
    if X.ndim != 4:
        raise ValueError(
            f"{name} as an array must be (n_images, H, W), (n_images, H, W, C) or "
            f"2-D flattened pixels with image_shape; got shape {X.shape}."
        )
    _check_not_empty(X.shape[0], name)
    _check_image_size(X.shape[1:3], X.shape, name)
    if X.shape[-1] not in _CHANNELS:
        raise ValueError(
            f"{name} has {X.shape[-1]} channels in its last axis (shape {X.shape}); "
            f"expected 1, 3 or 4 (channels-last: n_images, H, W, C). For a "
            f"channels-first array, pass torch.from_numpy(X) instead."
        )
    check_pixels(X, name)
    return ImageSequence(X, "hwc", channels=channels, name=name)


def _from_tensor(X, image_shape, channels, name):
    if X.ndim == 2:
        X = torch.from_numpy(_unflatten(X.numpy(), image_shape, name))
        X = X.permute(0, 3, 1, 2) if X.ndim == 4 else X
    if X.ndim == 3:
        X = X[:, None]
    if X.ndim != 4:
        raise ValueError(
            f"{name} as a tensor must be (n_images, C, H, W) or (n_images, H, W); "
            f"got shape {tuple(X.shape)}."
        )
    _check_not_empty(X.shape[0], name)
    _check_image_size(X.shape[2:4], tuple(X.shape), name)
    if X.shape[1] not in _CHANNELS:
        raise ValueError(
            f"{name} has {X.shape[1]} channels in axis 1 (shape {tuple(X.shape)}); "
            f"expected 1, 3 or 4 (tensors are channels-first: n_images, C, H, W)."
        )
    X = X.detach().cpu()
    check_pixels(X.numpy(), name)
    return ImageSequence(X, "chw", channels=channels, name=name)


def _unflatten(X, image_shape, name):
    if image_shape is None:
        raise ValueError(
            f"{name} is 2-D with shape {X.shape}; 2-D input is read as flattened "
            f"pixel rows and needs image_shape=(H, W) or (H, W, C)."
        )
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or np.prod(shape) != X.shape[1]:
        raise ValueError(
            f"image_shape={image_shape!r} does not match {name}'s {X.shape[1]} "
            f"values per row; expected (H, W) or (H, W, C) with H*W*C == "
            f"{X.shape[1]}."
        )
    return np.asarray(X).reshape((X.shape[0],) + shape)


def check_pixels(values, name, index=None):
    """Check dtype and range: integers in [0, 255], floats finite in [0, 1]."""
    where = name if index is None else f"{name}[{index}]"
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return
    if values.dtype.kind == "b" or values.dtype.kind not in "iuf":
        raise TypeError(
            f"{where} has dtype {values.dtype}; pixel values must be integers "
            f"(0-255) or floats (0-1)."
        )
    if values.size == 0:
        return
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise ValueError(
                f"{where} contains NaN or infinite pixel values; clean or impute "
                f"them before extracting features."
            )
        lo, hi = float(values.min()), float(values.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{where} has float pixels in [{lo:g}, {hi:g}]; float images must "
                f"lie in [0, 1]. Divide by the maximum value (255 for 8-bit "
                f"images, 16 for load_digits) or pass uint8 pixels."
            )
    else:
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{where} has integer pixels in [{lo}, {hi}]; integer images must "
                f"lie in [0, 255]. Rescale them, or pass floats in [0, 1]."
            )


def _array_to_tensor(array, *, channels_last, where):
    """A (C, H, W) tensor of one image; errors call it ``where`` ("X[3]")."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None] if channels_last else array[None]
    if array.ndim != 3:
        raise ValueError(
            f"{where} has shape {array.shape}; each image must be 2-D "
            f"(H, W) or 3-D ({'H, W, C' if channels_last else 'C, H, W'})."
        )
    c = array.shape[-1] if channels_last else array.shape[0]
    if c not in _CHANNELS:
        raise ValueError(
            f"{where} has {c} channels (shape {array.shape}); expected 1, 3 or 4."
        )
    check_pixels(array, where)
    array = np.ascontiguousarray(
        array, dtype=np.float32 if array.dtype.kind == "f" else np.uint8
    )
    if not array.flags.writeable:  # e.g. pandas' read-only arrays
        array = array.copy()
    # (H, W, C) pixels keep their memory layout (a permuted view, no copy):
    # torch resizes them 1.7x faster than (C, H, W) memory, to the same values,
    # and they go straight into channels-last batches.
    tensor = torch.from_numpy(array)
    return tensor.permute(2, 0, 1) if channels_last else tensor


def _load_path(path, index, name):
    from PIL import Image

    where = f"{name}[{index}]"
    try:
        pixels = _read_png_fast(path)
        if pixels is None:
            with Image.open(path) as img:
                check_declared_size(img.size, where, path)
                img.load()
                pixels = _pil_pixels(img)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{where}: no such image file: {str(path)!r}."
        ) from None
    except UnreadableImageError:
        raise
    except Image.DecompressionBombError as exc:
        # PIL refuses twice its MAX_IMAGE_PIXELS at open (not a ValueError);
        # its message holds the number of pixels the header declares.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else None
        raise _bomb_error(where, path, pixels) from exc
    except Exception as exc:  # every decoder failure, named
        # Damaged files make PIL's decoders raise OSError, SyntaxError or
        # ValueError, and sometimes TypeError, struct.error, IndexError, ...
        raise UnreadableImageError(
            f"{where}: cannot read image file {str(path)!r} ({_reason(exc)}).",
            "Check that it is a complete image file, or pass on_error='warn' to "
            "skip unreadable images.",
        ) from exc
    return _array_to_tensor(
        pixels, channels_last=True, where=f"{name}[{index}] ({str(path)!r})"
    )


def check_declared_size(size, where, path):
    """Refuse an image whose header declares more pixels than PIL's
    ``Image.MAX_IMAGE_PIXELS``, before its pixels are decoded.

    PIL itself only warns between the limit and twice it (and decodes: a
    few kilobytes of JPEG declaring 12000 x 12000 pixels took 1.4 GB), and
    raises a ``DecompressionBombError`` that is no ``ValueError`` above.
    """
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    width, height = size
    if limit is not None and width * height > limit:
        raise _bomb_error(where, path, width * height, f"{width} x {height} = ")


def _bomb_error(where, path, pixels, size=""):
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    declared = "more pixels" if pixels is None else f"{size}{pixels} pixels, more"
    return UnreadableImageError(
        f"{where}: image file {str(path)!r} declares {declared} than "
        f"PIL.Image.MAX_IMAGE_PIXELS ({limit}); it may be a decompression "
        f"bomb (a small file that decodes to an enormous image).",
        f"If the image is genuine, raise the limit (PIL.Image.MAX_IMAGE_PIXELS = "
        f"{pixels or 'a larger number'}, or None to remove it), or pass "
        f"on_error='warn' to skip unreadable images.",
    )


def _reason(exc):
    """An exception's message, with its type where that is not self-evident."""
    if isinstance(exc, (OSError, SyntaxError, ValueError)) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_PNG_START = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"  # signature, IHDR's length, type
_PNG_HEAD = 33  # bytes of the signature and the IHDR chunk
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the whole chunk, CRC included


@functools.cache
def _imagecodecs():
    """The imagecodecs module, or None when it is not installed (looked up once)."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs


def _read_png_fast(path):
    """The pixels of an image file decoded by libpng, or None: PIL reads it.

    Reads the whole file only when its first bytes are those of a PNG that
    :func:`_decode_png_fast` may decode.
    """
    if _imagecodecs() is None:
        return None
    with open(os.fspath(path), "rb") as f:  # PIL's own call: the same errors
        head = f.read(_PNG_HEAD)
        data = head + f.read() if _is_plain_png(head) else None
    return None if data is None else _decode_png_fast(data)


def _is_plain_png(data):
    """Whether ``data`` starts as an 8-bit gray, RGB or RGBA, non-interlaced PNG."""
    if len(data) < _PNG_HEAD or not data.startswith(_PNG_START):
        return False
    bit_depth, colour_type, compression, filtering, interlace = data[24:29]
    return (
        bit_depth == 8
        and colour_type in (0, 2, 6)
        and compression == filtering == interlace == 0
    )


def _decode_png_fast(data):
    """The pixels of PNG file bytes as :func:`_pil_pixels` gives them, or None.

    imagecodecs' libpng decodes a PNG in about two thirds of Pillow's CPU time
    and releases the GIL, so the background threads of ``transform`` decode
    in parallel. It is used only where its pixels are PIL's, bit for bit:
    8-bit gray, RGB and RGBA (alpha dropped, as PIL's ``convert("RGB")``
    does), not interlaced, in a file whose header PIL accepts and whose IDAT
    chunks run to the IEND that ends it. For anything else (palette, gray +
    alpha, other bit depths, interlaced or animated PNGs, damaged files,
    images over PIL's ``MAX_IMAGE_PIXELS``, no imagecodecs) it returns None,
    never raises, and PIL reads the file as before, with its errors.
    """
    from PIL import Image

    codecs = _imagecodecs()
    if codecs is None or not _is_plain_png(data):
        return None
    width, height = struct.unpack_from(">II", data, 16)
    limit = Image.MAX_IMAGE_PIXELS
    if max(width, height) > 1_000_000 or (limit is not None and width * height > limit):
        return None  # libpng's size limit; PIL's decompression-bomb warning or error
    stream = _png_pixel_stream(data)
    if stream is None:
        return None
    try:
        # PIL checks the chunks before the image data (CRCs, lengths, sizes of
        # text) and raises on damage libpng would only warn about.
        Image.open(io.BytesIO(data)).close()
        pixels = codecs.png_decode(stream)
    except Exception:
        return None
    if pixels.dtype != np.uint8 or pixels.shape[:2] != (height, width):
        return None
    return pixels[..., :3].copy() if data[25] == 6 else pixels  # RGBA: drop alpha


def _png_pixel_stream(data):
    """A PNG without its ancillary chunks: signature, IHDR, IDATs, IEND.

    libpng then never warns about metadata (colour profiles, text, time), and
    ``tRNS`` never adds an alpha channel; none of them changes PIL's pixels.
    None unless the IDAT chunks run unbroken to an IEND that ends ``data``
    (a truncated file, chunks after the pixels), or for an animated PNG.
    """
    view, pos, idat = memoryview(data), _PNG_HEAD, []
    while pos + 8 <= len(data):
        length, tag = struct.unpack_from(">I4s", data, pos)
        if tag == b"IDAT":
            idat.append(view[pos : pos + 12 + length])
        elif idat or tag in (b"IEND", b"acTL"):
            break
        pos += 12 + length
    if not idat or data[pos:] != _PNG_IEND:
        return None
    return b"".join([view[:_PNG_HEAD], *idat, _PNG_IEND])


def _pil_to_tensor(img, where="image"):
    try:
        pixels = _pil_pixels(img)
    except Exception as exc:  # a lazily decoded, damaged file
        raise UnreadableImageError(
            f"{where}: cannot decode the PIL image (mode {img.mode!r}, size "
            f"{img.size}) ({_reason(exc)}).",
            "If it was opened from a file, check that the file is complete.",
        ) from exc
    return _array_to_tensor(pixels, channels_last=True, where=where)


def _pil_pixels(img):
    """The pixels of a PIL image as an (H, W) or (H, W, C) array.

    8-bit modes become L or RGB (palette, alpha, CMYK... converted by PIL).
    16-bit modes ("I;16*") are scaled from 0-65535 to floats in [0, 1]; PIL's
    own conversion would clip them at 255. 32-bit "I" and "F" images keep
    their values, which must then be 0-255 and 0-1 like arrays.
    """
    if img.mode.startswith("I;16"):
        return np.asarray(img).astype(np.float32) / 65535.0
    if img.mode == "La":  # premultiplied alpha: PIL converts it via "LA" only
        img = img.convert("LA")
    if img.mode not in ("RGB", "L", "I", "F"):
        img = img.convert("RGB")  # palette, RGBA, LA, CMYK, 1-bit: drop alpha
    return np.array(img)  # a writable copy, as torch.from_numpy wants


def convert_channels(image, channels):
    """Make a (C, H, W) tensor have ``channels`` channels.

    Alpha is dropped; grayscale is repeated to RGB; RGB becomes grayscale with
    the ITU-R 601-2 luma weights (rounded as PIL's ``convert("L")`` for uint8)
    when the backbone wants one channel.
    """
    c = image.shape[0]
    if c == 4:
        image, c = image[:3], 3
    if c == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1).clone()
    if image.dtype == torch.uint8:
        # PIL's convert("L") in integers, so an RGB file of a gray image gives
        # exactly the pixels of the gray file.
        r, g, b = image.to(torch.int32)
        gray = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        return gray.to(torch.uint8)[None]
    r, g, b = image
    return (0.299 * r + 0.587 * g + 0.114 * b)[None]
