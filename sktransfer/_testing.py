"""Tiny backbones and image factories for tests, docs and smoke runs."""

from __future__ import annotations

import numpy as np
import torch

# The public home of the small networks and data (pickles and older code
# import them from here).
from .testing import TinyConvNet, TinyMLP, make_shapes_dataset  # noqa: F401

FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7


def float32_tolerance(expected, *, ulps=128):
    """``(rtol, atol)`` for float32 results that different kernels compute.

    CPUs (AVX2, AVX-512, AMX) and batch sizes change the order in which
    float32 sums are taken, so results differ by a few units in the last
    place of the *terms* summed, not of the result: a value near zero may
    carry the absolute error of the large values it was computed from. The
    tolerance is therefore ``ulps`` float32 epsilons relative to each value
    plus the same relative to the largest magnitude in ``expected``.
    ``ulps=128`` (1.5e-5) covers the short reductions of small test networks;
    comparisons across implementations (another library, resampling) pass
    a larger count.
    """
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    rtol = ulps * FLOAT32_EPS
    return rtol, rtol * max(scale, float(np.finfo(np.float32).tiny))


def assert_allclose_float32(actual, expected, *, ulps=128, err_msg=""):
    """``np.testing.assert_allclose`` with :func:`float32_tolerance`."""
    actual = actual.numpy() if isinstance(actual, torch.Tensor) else actual
    expected = expected.numpy() if isinstance(expected, torch.Tensor) else expected
    rtol, atol = float32_tolerance(expected, ulps=ulps)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def save_torchvision_checkpoint(name, weights="DEFAULT", random_state=0):
    """Save random weights where torch's hub cache expects ``weights`` of ``name``.

    Lets tests exercise torchvision's real ``weights="DEFAULT"`` loading path
    without network. Returns the path written.
    """
    import os

    import torchvision

    from .backbones._torchvision import hub_checkpoint_path

    member = torchvision.models.get_model_weights(name)
    member = member.DEFAULT if weights == "DEFAULT" else member[weights]
    path = hub_checkpoint_path(member.url)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        model = torchvision.models.get_model(
            name, weights=None, num_classes=len(member.meta["categories"])
        )
    torch.save(model.state_dict(), path)
    return path


def save_images(folder, images, fmt="png"):
    """Write uint8 arrays as image files ``00000.<fmt>``, ...; return the paths."""
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:05d}.{fmt}"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths
