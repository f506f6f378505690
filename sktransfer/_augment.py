"""Training-only augmentation presets (never applied at predict time)."""

from __future__ import annotations

AUGMENTS = ("off", "light", "default")


def make_augmentation(augment, train_transform, size):
    """A callable on float images (C, H, W) in [0, 1], or None for no change.

    ``"light"``: random horizontal flip. ``"default"``: random resized crop
    (70-100% of the area, back to ``size``), horizontal flip, brightness and
    contrast jitter of 20%. ``train_transform`` (a user callable on such
    tensors) runs after the preset.
    """
    from torchvision.transforms import v2

    steps = []
    if augment in ("light", "default"):
        if augment == "default" and size is not None:
            steps.append(v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True))
        steps.append(v2.RandomHorizontalFlip())
        if augment == "default":
            steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2))
    if train_transform is not None:
        steps.append(train_transform)
    if not steps:
        return None
    return v2.Compose(steps)
