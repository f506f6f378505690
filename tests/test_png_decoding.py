"""PNG files give the same tensors, errors and messages with or without imagecodecs.

With imagecodecs installed (``pip install "sktransfer[fast]"``), image files
that are plain 8-bit gray, RGB or RGBA PNGs are decoded by libpng
(``sktransfer._inputs._decode_png_fast``); every other file, and every file
libpng or PIL rejects, is read by PIL as before. Each test compares the two
paths on the same file: "PIL" is ``_load_path`` with imagecodecs switched off.
"""

import io
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone

from sktransfer import PretrainedFeatureExtractor, _inputs
from sktransfer._testing import TinyConvNet, save_images

SIZES = [(1, 1), (5, 3), (37, 53)]


@pytest.fixture
def png_decode_calls(monkeypatch):
    """Count the calls of ``imagecodecs.png_decode`` (skips without imagecodecs)."""
    codecs = pytest.importorskip("imagecodecs")
    _inputs._imagecodecs.cache_clear()
    calls = []
    decode = codecs.png_decode

    def counting(data, *args, **kwargs):
        calls.append(len(data))
        return decode(data, *args, **kwargs)

    monkeypatch.setattr(codecs, "png_decode", counting)
    return calls


@pytest.fixture
def without_imagecodecs(monkeypatch):
    """Make ``import imagecodecs`` fail, as where it is not installed."""
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    _inputs._imagecodecs.cache_clear()
    yield
    _inputs._imagecodecs.cache_clear()


def load(path):
    """What ``_load_path`` gives: a tensor, or the exception's type and message."""
    try:
        return _inputs._load_path(path, 0, "X")
    except Exception as exc:
        return type(exc), str(exc)


def load_with_pil(monkeypatch, path):
    with monkeypatch.context() as m:
        m.setattr(_inputs, "_imagecodecs", lambda: None)
        return load(path)


def assert_same(fast, pil):
    """Bit-identical tensors (values, dtype, shape, memory layout) or errors."""
    if isinstance(pil, tuple):
        assert fast == pil
        return
    assert isinstance(fast, torch.Tensor), fast
    assert fast.dtype == pil.dtype and fast.shape == pil.shape
    assert fast.stride() == pil.stride()
    assert torch.equal(fast, pil)


def pil_variants(rng, h, w):
    """Images of every PNG flavour PIL writes: {name: (image, save kwargs)}."""
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    gray, alpha = Image.fromarray(rgb[..., 0]), Image.fromarray(rgb[..., 1])
    palette = Image.fromarray(rgb).quantize(colors=16)
    wide = rng.integers(0, 65536, (h, w), dtype=np.uint16)
    return {
        "L": (gray, {}),
        "L tRNS": (gray, {"transparency": int(rgb[0, 0, 0])}),
        "RGB": (Image.fromarray(rgb), {}),
        "RGB tRNS": (
            Image.fromarray(rgb),
            {"transparency": tuple(int(v) for v in rgb[0, 0])},
        ),
        "RGBA": (Image.merge("RGBA", [*Image.fromarray(rgb).split(), alpha]), {}),
        "LA": (Image.merge("LA", [gray, alpha]), {}),
        "P": (palette, {}),
        "P transparency": (palette, {"transparency": 3}),
        "I;16": (Image.fromarray(wide), {}),
        "1": (Image.fromarray(rgb[..., 0] > 127), {}),
    }


# (mode PIL reads back, whether libpng decodes it)
EXPECTED = {
    "L": ("L", True),
    "L tRNS": ("L", True),
    "RGB": ("RGB", True),
    "RGB tRNS": ("RGB", True),
    "RGBA": ("RGBA", True),
    "LA": ("LA", False),
    "P": ("P", False),
    "P transparency": ("P", False),
    "I;16": ("I;16", False),
    "1": ("1", False),
}


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("variant", EXPECTED)
def test_every_png_flavour_decodes_as_with_pil(
    variant, size, png_decode_calls, monkeypatch, tmp_path
):
    image, save_kwargs = pil_variants(np.random.default_rng(0), *size)[variant]
    path = tmp_path / "image.png"
    image.save(path, **save_kwargs)
    with Image.open(path) as reread:
        mode, fast = EXPECTED[variant]
        assert reread.mode == mode
        assert ("transparency" in reread.info) == ("transparency" in save_kwargs)
    assert_same(load(path), load_with_pil(monkeypatch, path))
    assert len(png_decode_calls) == int(fast)


def test_pil_drops_alpha_without_blending(png_decode_calls, tmp_path):
    # The fast path drops the alpha channel of RGBA; PIL's convert("RGB")
    # (in _pil_pixels) must do just that, also where alpha is 0.
    rgba = np.random.default_rng(1).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[:4, :, 3] = 0
    image = Image.fromarray(rgba)
    assert image.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), rgba[..., :3])
    image.save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(
        load(tmp_path / "rgba.png").permute(1, 2, 0).numpy(), rgba[..., :3]
    )
    assert len(png_decode_calls) == 1


def chunk(tag, data):
    crc = zlib.crc32(tag + data)
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


ADAM7 = [
    (0, 0, 8, 8),
    (0, 4, 8, 8),
    (4, 0, 8, 4),
    (0, 2, 4, 4),
    (2, 0, 4, 2),
    (0, 1, 2, 2),
    (1, 0, 2, 1),
]  # (first row, first column, row step, column step)


def png_bytes(pixels, colour_type, *, interlace=False, before=b"", after=b""):
    """A PNG of uint8 or big-endian uint16 pixels, with extra chunks around IDAT.

    Writes what PIL can't: interlaced files, 16-bit RGB, chunks after IDAT.
    """
    h, w = pixels.shape[:2]
    passes = [pixels[r::dr, c::dc] for r, c, dr, dc in ADAM7] if interlace else [pixels]
    rows = b"".join(
        b"\x00" + row.tobytes()
        for p in passes
        if p.size
        for row in p.reshape(p.shape[0], -1)
    )
    ihdr = struct.pack(
        ">IIBBBBB", w, h, 8 * pixels.itemsize, colour_type, 0, 0, int(interlace)
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + before
        + chunk(b"IDAT", zlib.compress(rows))
        + after
        + chunk(b"IEND", b"")
    )


RGB = np.random.default_rng(2).integers(0, 256, (19, 23, 3), dtype=np.uint8)
TEXT = chunk(b"tEXt", b"Comment\x00made by a test")
WRITTEN = {  # name: (PNG bytes, whether libpng decodes it)
    "interlaced RGB": (png_bytes(RGB, 2, interlace=True), False),
    "interlaced gray": (png_bytes(RGB[..., 0], 0, interlace=True), False),
    "16-bit RGB": (png_bytes(RGB.astype(">u2") * 257, 2), False),
    "text before IDAT": (png_bytes(RGB, 2, before=TEXT), True),
    "text after IDAT": (png_bytes(RGB, 2, after=TEXT), False),
    "colour profile libpng rejects": (
        png_bytes(
            RGB,
            2,
            before=chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"not a profile")),
        ),
        True,
    ),
    "animated PNG control chunk": (
        png_bytes(RGB, 2, before=chunk(b"acTL", struct.pack(">II", 1, 0))),
        False,
    ),
}


@pytest.mark.parametrize("name", WRITTEN)
def test_other_png_layouts_decode_as_with_pil(
    name, png_decode_calls, monkeypatch, tmp_path, caplog
):
    data, fast = WRITTEN[name]
    path = tmp_path / "image.png"
    path.write_bytes(data)
    got = load(path)
    assert_same(got, load_with_pil(monkeypatch, path))
    assert len(png_decode_calls) == int(fast)
    expected = RGB if name != "interlaced gray" else RGB[..., 0]
    np.testing.assert_array_equal(got.permute(1, 2, 0).squeeze(-1).numpy(), expected)
    # libpng's warnings on metadata (a broken colour profile) are not logged:
    # it only ever sees the IHDR, IDAT and IEND chunks.
    assert not [r for r in caplog.records if r.name.startswith("imagecodecs")]


def _photo_png(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path, path.read_bytes()


def _write(tmp_path, data, name="broken.png"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("kept", "message"),
    [("half", "image file is truncated"), ("20 bytes", "Truncated File Read")],
)
def test_truncated_png_raises_pils_error(
    kept, message, png_decode_calls, monkeypatch, tmp_path
):
    _, data = _photo_png(tmp_path)
    path = _write(tmp_path, data[: len(data) // 2 if kept == "half" else 20])
    with pytest.raises(
        _inputs.UnreadableImageError,
        match=re.escape(f"X[0]: cannot read image file {str(path)!r} ({message}"),
    ):
        _inputs._load_path(path, 0, "X")
    assert load(path) == load_with_pil(monkeypatch, path)
    assert png_decode_calls == []  # cut before its IEND: never given to libpng


@pytest.mark.parametrize(
    "damage",
    [
        "flipped IDAT byte",
        "flipped header byte",
        "no IEND",
        "garbage after the signature",
    ],
)
def test_damaged_png_gives_what_pil_gives(
    damage, png_decode_calls, monkeypatch, tmp_path
):
    _, data = _photo_png(tmp_path)
    broken = bytearray(data)
    if damage == "flipped IDAT byte":  # PIL does not check the IDAT's CRC
        broken[data.index(b"IDAT") + 40] ^= 0xFF
    elif damage == "flipped header byte":  # a wrong IHDR CRC
        broken[20] ^= 0x01
    elif damage == "no IEND":  # PIL reads the pixels
        broken = broken[:-12]
    else:
        broken[8:] = b"this is not a chunk" * 3
    path = _write(tmp_path, bytes(broken))
    assert_same(load(path), load_with_pil(monkeypatch, path))
    if damage == "garbage after the signature":
        with pytest.raises(
            _inputs.UnreadableImageError,
            match=re.escape(
                f"X[0]: cannot read image file {str(path)!r} (cannot identify "
                f"image file {str(path)!r})"
            ),
        ):
            _inputs._load_path(path, 0, "X")


def test_missing_file_message_is_unchanged(png_decode_calls, tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(
        FileNotFoundError,
        match=re.escape(f"X[3]: no such image file: {str(missing)!r}."),
    ):
        _inputs._load_path(missing, 3, "X")


def chunk_spans(data):
    """(start, end) of each chunk of a PNG."""
    spans, start = [], 8
    while start + 8 <= len(data):
        end = start + 12 + struct.unpack_from(">I", data, start)[0]
        spans.append((start, end))
        start = end
    return spans


def damage(data, rng):
    """Flip a bit, cut the file, or change a byte of a chunk and fix its CRC."""
    data = bytearray(data)
    kind = rng.integers(3)
    if kind == 0:
        data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        del data[rng.integers(8, len(data)) :]
    else:  # as a faulty writer would: the chunk's CRC matches its bytes
        start, end = chunk_spans(data)[rng.integers(len(chunk_spans(data)))]
        body = bytearray(data[start + 8 : end - 4]) or bytearray(b"x")
        body[rng.integers(len(body))] = rng.integers(256)
        data[start:end] = chunk(bytes(data[start + 4 : start + 8]), bytes(body))
    return bytes(data)


def test_fast_pixels_are_always_pils(png_decode_calls):
    # Wherever libpng's pixels are used, PIL reads the same bytes without an
    # error to the same pixels.
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (9, 14, 3), dtype=np.uint8)
    plain = [
        png_bytes(rgb, 2, before=TEXT),
        png_bytes(rgb[..., 0], 0),
        png_bytes(np.dstack([rgb, rgb[..., :1]]), 6),
    ]
    used = 0
    for _ in range(1000):
        data = damage(plain[rng.integers(len(plain))], rng)
        fast = _inputs._decode_png_fast(data)  # never raises
        if fast is None:
            continue
        used += 1
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            np.testing.assert_array_equal(fast, _inputs._pil_pixels(image))
    assert used > 10  # e.g. a changed text chunk: the pixels are intact


def test_extractor_features_with_and_without_imagecodecs(png_decode_calls, tmp_path):
    images = np.random.default_rng(5).integers(0, 256, (6, 21, 17, 3), dtype=np.uint8)
    paths = save_images(tmp_path, images)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        extractor = PretrainedFeatureExtractor(
            TinyConvNet(),
            preprocessing={"resize_size": 16, "crop_size": 16},
            device="cpu",
            batch_size=2,
        )
    fast = clone(extractor).fit_transform(paths)
    assert len(png_decode_calls) >= len(paths)
    np.testing.assert_array_equal(fast, clone(extractor).fit_transform(images))


def test_everything_works_without_imagecodecs(without_imagecodecs, tmp_path):
    assert _inputs._imagecodecs() is None
    images = np.random.default_rng(6).integers(0, 256, (4, 12, 10, 3), dtype=np.uint8)
    paths = save_images(tmp_path, images)
    X = _inputs.as_image_sequence(paths)
    for i, image in enumerate(images):
        np.testing.assert_array_equal(X[i].permute(1, 2, 0).numpy(), image)
    assert _inputs._decode_png_fast(Path(paths[0]).read_bytes()) is None
    with pytest.raises(FileNotFoundError, match=re.escape("X[0]: no such image file")):
        _inputs._load_path(tmp_path / "missing.png", 0, "X")
