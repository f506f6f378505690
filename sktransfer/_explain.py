"""Saliency maps of a fine-tuned classifier: Grad-CAM, and a plot of them.

Grad-CAM (Selvaraju et al., ICCV 2017) weighs the channels of a
convolutional feature map A (N, C, h, w) by the mean gradient of the class
score over their positions, sums them and keeps the positive part:
``relu(sum_c mean(d score / d A_c) * A_c)``; the map is upsampled
(bilinear) to the network's input size and scaled to [0, 1] per image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ._features import check_layers
from ._inference import iter_image_batches


def last_feature_map(model, x):
    """Name of the module of ``model`` that last returns a 4-D output with
    more than one position (N, C, h, w), h * w > 1, in a forward pass on
    ``x``; None when none does."""
    order = []

    def hook_for(name):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                if output.shape[-1] * output.shape[-2] > 1:
                    order.append(name)

        return hook

    handles = [
        m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return order[-1] if order else None


def grad_cam(net, backbone, layer, x, targets):
    """Grad-CAM maps (N, H, W) in [0, 1] of batch ``x`` for class indices
    ``targets`` (None: the predicted class), at module ``layer`` of
    ``backbone`` (a part of ``net``)."""
    captured = {}

    def hook(module, args, output):
        captured["a"] = output[0] if isinstance(output, (tuple, list)) else output

    handle = backbone.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # a graph even if all is frozen
            logits = net(x)
            if targets is None:
                targets = logits.argmax(1)
            score = logits.gather(1, targets.view(-1, 1)).sum()
            (grads,) = torch.autograd.grad(score, captured["a"])
    finally:
        handle.remove()
    acts = captured["a"].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(1, keepdim=True)).float()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(torch.finfo(torch.float32).tiny)
    return (cam / peak.view(-1, 1, 1)).cpu().numpy()


def explain_classifier(est, X, layer, target):
    """The body of :meth:`FineTunedClassifier.explain`."""
    name = type(est).__name__
    if est.preprocessing_ is None:
        raise ValueError(
            f"{name}.explain computes saliency maps of images, but this "
            f"classifier reads X with preprocessing='passthrough'."
        )
    net = est.net_.module_
    net.eval()
    backbone = net.body.body  # TransferNet -> FeatureModel -> the backbone
    targets = None
    if target is not None:
        matches = np.flatnonzero(est.classes_ == target)
        if len(matches) != 1:
            raise ValueError(
                f"{name}.explain: target must be one of classes_ "
                f"{est.classes_.tolist()} or None (the predicted class), got "
                f"{target!r}."
            )
        targets = int(matches[0])
    data = est._input_spec.read(est, X, reset=False)
    batches = iter_image_batches(data, est.preprocessing_, est.batch_size)
    maps, chosen = [], None
    for _, batch, _ in batches:
        batch = batch.to(est.device_)
        if chosen is None:
            chosen = _layer(backbone, layer, batch[:1], est)
        t = None
        if targets is not None:
            t = torch.full((len(batch),), targets, device=batch.device)
        maps.append(grad_cam(net, backbone, chosen, batch, t))
    return np.concatenate(maps).astype(np.float32)


def _layer(backbone, layer, x, est):
    name = type(est).__name__
    if layer is not None:
        if not isinstance(layer, str):
            raise TypeError(
                f"{name}.explain: layer must be a module name (str) or None, "
                f"got {layer!r}."
            )
        return check_layers(
            backbone, layer, backbone_name=est.backbone_name_, owner=name
        )[0]
    found = last_feature_map(backbone, x)
    if found is None:
        raise ValueError(
            f"{name}.explain: the backbone {est.backbone_name_!r} has no module "
            f"returning a spatial feature map (N, C, h, w); Grad-CAM needs a "
            f"convolutional stage. Pass layer=<module name> to choose one."
        )
    return found


def plot_explanation(image, heatmap, ax=None, *, alpha=0.5, cmap="jet"):
    """Show ``image`` with ``heatmap`` (from ``explain``) laid over it.

    The heatmap covers the network's input, the image after the estimator's
    resize and centre crop; it is stretched over ``image``, so pass the
    image as the network saw it (as cropped) when the crop cut parts off.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, C)
        uint8 (0-255) or float (0-1) pixels.
    heatmap : array-like of shape (h, w)
        Values in [0, 1], as :meth:`FineTunedClassifier.explain` returns.
    ax : matplotlib Axes or None, default=None
        Where to draw; None uses ``matplotlib.pyplot.gca()``.
    alpha : float, default=0.5
        Opacity of the heatmap.
    cmap : str, default="jet"
        Colour map of the heatmap.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on, with the image and the heatmap over it.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sktransfer import plot_explanation
    >>> image = np.zeros((16, 16), np.uint8)
    >>> heat = np.zeros((8, 8)); heat[2, 3] = 1.0
    >>> ax = plot_explanation(image, heat)
    >>> len(ax.get_images())
    2
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "sktransfer.plot_explanation needs matplotlib; install it with: "
            'pip install "sktransfer[benchmark]" (or pip install matplotlib)'
        ) from exc
    image = np.asarray(image)
    heatmap = np.asarray(heatmap)
    if image.ndim not in (2, 3) or heatmap.ndim != 2:
        raise ValueError(
            f"plot_explanation: image must be (H, W) or (H, W, C) and heatmap "
            f"(h, w), got shapes {image.shape} and {heatmap.shape}."
        )
    if ax is None:
        ax = plt.gca()
    h, w = image.shape[:2]
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, extent=extent)
    ax.imshow(heatmap, cmap=cmap, alpha=alpha, vmin=0, vmax=1, extent=extent)
    ax.set_axis_off()
    return ax
