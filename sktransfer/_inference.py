"""Batching and the inference loop.

Decoding and resizing of the next batches run in background threads while the
current batch goes through the network (PIL decoding and torch resizing
release the GIL), so the forward pass is rarely kept waiting.
"""

from __future__ import annotations

import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ._device import autocast


class BadImage:
    """Marks an image that could not be read (with ``on_error='warn'``).

    ``index`` is its row in the output.
    """

    def __init__(self, index, error):
        self.index = index
        self.error = error


def _prepare_batch(
    images, preprocessing, rows, indices, on_error, memory_format, pin_memory
):
    """Decode, resize and crop the images of ``rows`` into one float batch."""
    crops, failed = [], []
    for row in rows:
        try:
            crops.append(preprocessing.resize_crop(images[indices[row]]))
        except (ValueError, OSError) as exc:
            if on_error == "raise":
                raise
            failed.append(BadImage(row, exc))
            crops.append(None)
    good = [c for c in crops if c is not None]
    if not good:
        return None, failed
    shapes = {tuple(c.shape) for c in good}
    if len(shapes) > 1:
        raise ValueError(
            f"Images in {images.name} have different sizes after preprocessing "
            f"({sorted(shapes)[:3]}); set preprocessing={{'resize_size': S, "
            f"'crop_size': S}} so that every image gets the same size."
        )
    return _normalized_batch(crops, preprocessing, memory_format, pin_memory), failed


def _normalized_batch(crops, preprocessing, memory_format, pin_memory):
    """``torch.stack([preprocessing.apply(...)])`` of resized crops, built in place.

    Each crop is converted once, straight into a batch of the final memory
    layout, then scaled and normalised in place with the operations of
    :meth:`Preprocessing.apply` (same values, bit for bit). Rows of unreadable
    images (None) are zeros before normalisation.
    """
    c, h, w = next(t for t in crops if t is not None).shape
    batch = torch.empty(
        (len(crops), c, h, w),
        dtype=torch.float32,
        memory_format=memory_format,
        pin_memory=pin_memory,
    )
    uint8 = [t is None or t.dtype == torch.uint8 for t in crops]
    for row, crop, is_uint8 in zip(batch, crops, uint8):
        if crop is None:
            row.zero_()
            continue
        row.copy_(crop)
        if is_uint8 and not all(uint8):
            row.div_(255.0)
    if all(uint8):
        batch.div_(255.0)
    mean, std = _normalization(
        tuple(preprocessing.mean), tuple(preprocessing.std), (c, h, w), memory_format
    )
    return batch.sub_(mean).div_(std)


@functools.lru_cache(maxsize=16)
def _normalization(mean, std, shape, memory_format):
    """Mean and std expanded to one image in ``memory_format``.

    Broadcasting (C, 1, 1) over a channels-last batch does not vectorise
    (10x slower); a full image of the same layout does.
    """

    def full(values):
        t = torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)
        return t.expand((1,) + shape).contiguous(memory_format=memory_format)

    return full(mean), full(std)


def iter_image_batches(
    images,
    preprocessing,
    batch_size,
    *,
    n_threads=1,
    on_error="raise",
    indices=None,
    channels_last=False,
    pin_memory=False,
):
    """Yield ``(rows, batch, failed)`` with batches prepared ahead in threads.

    ``indices`` (default: all) are the images to read, in output order;
    ``rows`` are positions in that order. Batches are normalised float32,
    channels-last and in pinned memory (for CUDA) when asked. At most
    ``n_threads + 1`` batches are held in memory at once.
    """
    indices = range(len(images)) if indices is None else indices
    n = len(indices)
    chunks = [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    args = (images, preprocessing)
    kwargs = (indices, on_error, memory_format, pin_memory)
    n_threads = max(1, n_threads)
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        pending = []
        ahead = n_threads + 1
        for chunk in chunks[:ahead]:
            pending.append((chunk, pool.submit(_prepare_batch, *args, chunk, *kwargs)))
        next_chunk = ahead
        while pending:
            chunk, future = pending.pop(0)
            batch, failed = future.result()
            if next_chunk < len(chunks):
                c = chunks[next_chunk]
                pending.append((c, pool.submit(_prepare_batch, *args, c, *kwargs)))
                next_chunk += 1
            yield chunk, batch, failed


def iter_array_batches(X, batch_size):
    """Batches of a float32 tensor, for backbones that take tensors as they are."""
    for start in range(0, len(X), batch_size):
        idx = list(range(start, min(start + batch_size, len(X))))
        yield idx, X[start : start + batch_size], []


def run_inference(
    model,
    batches,
    n_samples,
    *,
    device,
    precision="float32",
    channels_last=False,
    progress=None,
    n_features=None,
):
    """Run ``model`` over ``batches``; return (float32 array, list of BadImage)."""
    out = None
    failures = []
    with torch.inference_mode():
        for indices, batch, failed in batches:
            failures.extend(failed)
            if batch is not None:
                x = batch.to(device, non_blocking=True)
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, precision):
                    y = model(x)
                y = y.float().cpu().numpy()
                if out is None:
                    out = np.empty((n_samples, y.shape[1]), dtype=np.float32)
                out[indices[0] : indices[-1] + 1] = y
            if progress is not None:
                progress.update(len(indices))
    if out is None:  # every image failed
        return np.full((n_samples, n_features or 0), np.nan, np.float32), failures
    for bad in failures:
        out[bad.index] = np.nan
    return out, failures


def progress_bar(total, enabled, desc):
    if not enabled:
        return contextlib.nullcontext(None)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        return contextlib.nullcontext(None)
    return tqdm(total=total, desc=desc, unit="img")
