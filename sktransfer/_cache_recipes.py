"""Feature-cache keys known before the network is built.

The model key of the feature cache (``_cache.model_key``) digests the built
network: its architecture and, for some weights, their values. A fit whose
features all come from the cache does not need the network otherwise, so the
extractor looks its model key up from a *recipe key* that needs no network:
the backbone's name, the weights' identity, the initialisation seed, the
resolved preprocessing, ``layer``, ``pooling``, ``precision``, the device type
and the library versions. The first fit of a recipe builds the network and
stores ``recipe key -> (model key, output width, layers)`` in the cache; later
fits of the same recipe (clones in a grid search; on disk, other processes)
read it and build the network only when a cache miss needs it.

A recipe key stands for the network only where the recipe determines it:

- the backbone is named (not a user's ``nn.Module``) and the weights are named
  too (``"DEFAULT"``, a weights name, None), not a state dict or a file;
- the weights' identity names exact values (``_weights.names_exact_values``);
- ``random_state`` is None or an int (a ``RandomState`` gives a new draw);
- the network has no lazy modules (their values are known after a forward);
- the architecture follows from the name (sktransfer, torchvision and timm
  backbones). A backbone registered in this process by
  :func:`~sktransfer.register_backbone` may be registered again with another
  ``create``: its recipe key holds the registration's identity in this
  process and is never written to disk.
"""

from __future__ import annotations

import json
import os

from ._cache import digest, library_versions
from .backbones._weights import names_exact_values

RECIPE_FORMAT = 1


def recipe_key(recipe, *, seed, layer, pooling, precision, device, compile=False):
    """``(key, persist)`` of a :class:`~sktransfer.backbones._load.BackboneRecipe`
    with the extractor's settings, or ``(None, False)`` when they do not
    determine the network."""
    if not names_exact_values(recipe.weights_id):
        return None, False
    if recipe.builtin:
        architecture = "named"
    else:  # the registration object of this process (kept alive by the entry)
        architecture = f"registered:{os.getpid()}:{id(recipe.spec)}"
    pre = recipe.preprocessing
    description = {
        "format": RECIPE_FORMAT,
        "versions": library_versions(),
        "backbone": recipe.name,
        "architecture": architecture,
        "weights": recipe.weights_id,
        "seed": seed,
        "preprocessing": "passthrough" if pre is None else pre.to_dict(),
        "layer": layer,
        "pooling": pooling,
        "precision": precision,
        "device": device.type,
        "compile": bool(compile),
    }
    try:
        json.dumps(description)
    except (TypeError, ValueError):  # a setting without a stable JSON form
        return None, False
    return digest(description), recipe.builtin


def recipe_entry(model_key, description, n_features_out, layers):
    """What a recipe key stands for (JSON-able)."""
    return {
        "format": RECIPE_FORMAT,
        "model_key": model_key,
        "description": description,
        "n_features_out": int(n_features_out),
        "layers": None if layers is None else list(layers),
    }


def read_entry(entry):
    """``(model_key, description, n_features_out, layers)`` of a stored entry,
    or None when it is not one this version wrote (then the network is built)."""
    if not isinstance(entry, dict) or entry.get("format") != RECIPE_FORMAT:
        return None
    key, width, layers = (
        entry.get("model_key"),
        entry.get("n_features_out"),
        entry.get("layers"),
    )
    if (
        not isinstance(key, str)
        or not isinstance(entry.get("description"), dict)
        or not isinstance(width, int)
        or isinstance(width, bool)
        or width < 1
        or not (
            layers is None
            or (isinstance(layers, list) and all(isinstance(n, str) for n in layers))
        )
    ):
        return None
    return key, entry["description"], width, layers
