"""Training through Hugging Face Accelerate (``accelerator=``), with skorch's
``AccelerateMixin``.

The Accelerator places the module, wraps model, optimizer and data loaders for
several GPUs or processes (``accelerate launch``), and runs mixed precision
(``Accelerator(mixed_precision="bf16")``): the fine-tuner's own ``precision``
stays ``"float32"`` then. Installed with ``pip install "sktransfer[accelerate]"``.
"""

from __future__ import annotations

import functools


def make_accelerator(accelerator, owner, precision="float32"):
    """The Accelerator of an ``accelerator`` parameter (None: none)."""
    if accelerator is None:
        return None
    if precision != "float32":
        raise ValueError(
            f"{owner}: with an accelerator, mixed precision is the Accelerator's: "
            f'pass precision="float32" and Accelerator(mixed_precision="bf16") '
            f'(or "fp16"); got precision={precision!r}.'
        )
    try:
        from accelerate import Accelerator
    except ImportError as exc:
        raise ImportError(
            f"{owner}: accelerator={accelerator!r} needs Hugging Face Accelerate: "
            f'pip install "sktransfer[accelerate]".'
        ) from exc
    if isinstance(accelerator, str) and accelerator == "auto":
        return Accelerator()
    if isinstance(accelerator, Accelerator):
        return accelerator
    raise TypeError(
        f"{owner}: accelerator must be None, 'auto' or an accelerate.Accelerator, "
        f"got {type(accelerator).__name__}."
    )


@functools.lru_cache(maxsize=1)
def accelerated_net_class():
    """skorch's NeuralNet with ``AccelerateMixin``."""
    from skorch import NeuralNet
    from skorch.hf import AccelerateMixin

    return type("AcceleratedNet", (AccelerateMixin, NeuralNet), {})
