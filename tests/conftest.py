"""Shared fixtures: an offline, private torch hub cache and tiny images."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest


def _no_download(url, *args, **kwargs):
    raise urllib.error.URLError(
        f"downloads are disabled in the sktransfer test suite (asked for {url})"
    )


@pytest.fixture(scope="session", autouse=True)
def offline_torch_home(tmp_path_factory):
    """Point TORCH_HOME to an empty folder and make every hub download fail.

    Nothing reads or writes the user's cache, and a test that would need the
    network fails instead of downloading.
    """
    import torch.hub

    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(torch.hub, "_hub_dir", None)  # undo any torch.hub.set_dir()
        mp.setattr(torch.hub, "download_url_to_file", _no_download)
        yield home


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Run torch on one thread during the tests, then restore the setting.

    The tests use tiny inputs, for which thread start-up and, on a shared
    machine, waiting for busy cores cost more than they save (measured on 2
    busy cores: resnet18 fit + transform 1.5 s with 2 threads, 0.2 s with 1).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def resnet18_checkpoint(offline_torch_home):
    """Random resnet18 weights saved where torch's hub cache expects DEFAULT."""
    from sktransfer._testing import save_torchvision_checkpoint

    path = Path(save_torchvision_checkpoint("resnet18"))
    assert path.is_relative_to(offline_torch_home)
    return path


@pytest.fixture
def tiny_convnet():
    """A TinyConvNet with seeded weights; global torch state is left alone."""
    import torch

    from sktransfer._testing import TinyConvNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyConvNet()


@pytest.fixture(scope="session")
def rgb_images():
    """Six random uint8 RGB images (N, H, W, 3) of 24 x 20 pixels."""
    return np.random.default_rng(0).integers(0, 256, (6, 24, 20, 3), dtype=np.uint8)
