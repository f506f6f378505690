"""PretrainedFeatureExtractor: images -> features from a pretrained backbone."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch.nn.parameter import is_lazy

from ._base import PretrainedEstimator, init_seed
from ._cache import cached_rows, image_keys, model_key, resolve_cache
from ._cache_recipes import read_entry, recipe_entry, recipe_key
from ._device import resolve_device, wants_channels_last
from ._features import FeatureModel, check_layers
from ._inference import progress_bar
from ._input_spec import resolved_attributes, restore_input_attributes
from ._inputs import ImageSequence
from ._params import EXTRACTOR_PARAMS, params_doc
from .backbones._load import describe_backbone, load_backbone, seeded_torch

_DEFAULT_THREADS = 2  # n_jobs=None


class PretrainedFeatureExtractor(TransformerMixin, PretrainedEstimator):
    __doc__ = f"""Extract feature vectors from images with a pretrained backbone.

    The backbone, its weights, preprocessing and device are resolved in
    :meth:`fit` (constructing the extractor is free and offline). The backbone
    is not trained: ``fit`` only loads it, so it can sit in a
    :class:`~sklearn.pipeline.Pipeline` before any classical estimator.

    Parameters
    ----------
{params_doc(EXTRACTOR_PARAMS)}
    Attributes
    ----------
    backbone_ : torch.nn.Module
        The module computing the features (in eval mode, on ``device_``).
        With a ``cache`` that already knows this recipe (a fit of the same
        named backbone, weights and settings ran before), ``fit`` does not
        build it: it is built, with the same weights, when first used (a
        cache miss, pickling, or reading this attribute).
    preprocessing_ : Preprocessing or None
        The preprocessing applied.
    weights_id_ : str
        Identity of the loaded weights.
    device_ : torch.device
    n_features_out_ : int
        Length of the feature vectors.
    n_features_in_ : int
        Only for 2-D numeric ``X`` (flattened pixels or passthrough).

    Notes
    -----
    Pickles carry the weights: a pickled fitted extractor works on another
    machine without network (and loads on CPU if saved on a GPU). Unpickling
    runs code, so only load pickles you trust; see
    :func:`sktransfer.save` for a pickle-free format.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.testing import TinyConvNet
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 20, 20, 3), dtype=np.uint8)
    >>> extractor = PretrainedFeatureExtractor(
    ...     TinyConvNet(), preprocessing={{"resize_size": 16, "crop_size": 16}})
    >>> extractor.fit_transform(images).shape
    (4, 8)
    """
    _params = EXTRACTOR_PARAMS

    _fitted_attribute = "n_features_out_"

    def __init__(
        self,
        backbone="resnet18",
        *,
        weights="DEFAULT",
        layer=None,
        pooling="avg",
        preprocessing=None,
        image_shape=None,
        batch_size=16,
        device="auto",
        precision="float32",
        n_jobs=None,
        on_error="raise",
        random_state=None,
        verbose=0,
        cache=None,
        compile=False,
    ):
        # Stores each argument as is (scikit-learn reads them back by name).
        self._store_params(locals())

    def fit(self, X, y=None):
        """Load the backbone and its weights; run it on the first readable image.

        With a ``cache`` that knows this recipe's features (see ``backbone_``),
        the backbone is neither built nor run: only the first readable image
        is read.

        Parameters
        ----------
        X : images
            Any form accepted by :meth:`transform`.
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        self : PretrainedFeatureExtractor
            The fitted extractor.
        """
        self._check_params()
        # fit starts from scratch: n_features_in_ is set again only for 2-D X.
        for attr in ("n_features_in_", "feature_names_in_", "_backbone", "_deferred"):
            self.__dict__.pop(attr, None)
        self._cache = resolve_cache(self.cache, self._name)
        known = self._known_recipe()
        if known is None:
            self._build_backbone(
                self._resolve(), self.layer, self.pooling, self.compile
            )
        else:  # the cache knows the model key: the network waits for a miss
            recipe, _, (key, info, width, layers) = known
            self._set_resolved(
                recipe.preprocessing,
                recipe.weights_id,
                recipe.name,
                resolve_device(self.device, self._name),
            )
            self._layers = layers
        data = self._input_spec.read(self, X, reset=True)
        first = self._first_readable(data)
        if known is not None:
            self._cache_key, self._cache_info = key, info
            self._deferred = self._deferred_build()
            self.n_features_out_ = width
            return self
        model = self._backbone
        # Lazy modules (nn.LazyLinear) initialise their parameters on this
        # first forward pass; seed them from random_state, not global state.
        # Their values are part of the cache key, known only after it.
        lazy = any(is_lazy(p) for p in model.parameters())
        self._cache_key = None
        if self._cache is not None and not lazy:
            self._set_cache_key()
        # With a cache, a known first image spares this forward pass; its
        # result is not stored (computed alone, it may differ in the last bits
        # from the same image computed in a batch by transform).
        with seeded_torch(init_seed(self.random_state), self.device_):
            self.n_features_out_ = self._extract(first, store=False).shape[1]
        if self._cache is not None and lazy:
            self._set_cache_key(lazy=True)
        elif self._cache is not None:
            self._remember_recipe()
        return self

    @property
    def backbone_(self):
        """The feature network; built on first use after a fit whose model
        key the cache knew (see ``_cache_recipes``)."""
        if self.__dict__.get("_backbone") is None:
            deferred = self.__dict__.get("_deferred")
            if deferred is None:
                raise AttributeError(
                    f"{self._name} has no attribute 'backbone_' (not fitted)."
                )
            loaded = load_backbone(
                deferred["backbone"],
                deferred["weights"],
                preprocessing=deferred["preprocessing"],
                seed=deferred["seed"],
                owner=self._name,
            )
            self._build_backbone(
                loaded, deferred["layer"], deferred["pooling"], deferred["compile"]
            )
        return self._backbone

    def _build_backbone(self, loaded, layer, pooling, compile):
        """Set ``backbone_`` (and what goes with it) from a LoadedBackbone."""
        layers = check_layers(
            loaded.model, layer, backbone_name=loaded.name, owner=self._name
        )
        model = FeatureModel(loaded.model, loaded.head, layers, pooling)
        self._channels_last = wants_channels_last(model, self.device_)
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        self._backbone = model.to(self.device_).eval()
        if compile:
            self._backbone.compile()  # in place: state dict keys unchanged
        self._layers = layers

    def _deferred_build(self):
        """What builds the network of this fit later (parameters set after
        fit do not change the fitted extractor)."""
        return {
            "backbone": self.backbone,
            "weights": copy.deepcopy(self.weights),
            "preprocessing": copy.deepcopy(self.preprocessing),
            "seed": init_seed(self.random_state),
            "layer": copy.deepcopy(self.layer),
            "pooling": self.pooling,
            "compile": self.compile,
        }

    def _recipe(self):
        """``(recipe, recipe key, persist)`` of this fit, or None when the
        network is needed to know its features' key (see ``_cache_recipes``)."""
        if self._cache is None or not (
            self.random_state is None or isinstance(self.random_state, int)
        ):
            return None
        recipe = describe_backbone(
            self.backbone,
            self.weights,
            preprocessing=self.preprocessing,
            seed=init_seed(self.random_state),
        )
        if recipe is None:
            return None
        key, persist = recipe_key(
            recipe,
            seed=init_seed(self.random_state),
            layer=self.layer,
            pooling=self.pooling,
            precision=self.precision,
            device=resolve_device(self.device, self._name),
            compile=self.compile,
        )
        return None if key is None else (recipe, key, persist)

    def _known_recipe(self):
        """``(recipe, recipe key, stored entry)`` when the cache knows this
        fit's model key, else None."""
        found = self._recipe()
        if found is None:
            return None
        entry = read_entry(self._cache._get_recipe(found[1]))
        return None if entry is None else (found[0], found[1], entry)

    def _remember_recipe(self):
        found = self._recipe()
        if found is None:
            return
        recipe, key, persist = found
        entry = recipe_entry(
            self._cache_key, self._cache_info, self.n_features_out_, self._layers
        )
        if not persist:  # keeps the registration alive, so its id stays its own
            entry["registration"] = recipe.spec
        self._cache._put_recipe(key, entry, persist=persist)

    def _set_cache_key(self, lazy=False, weights=None):
        """The model part of the cache key (see ``_cache.model_key``).
        ``weights`` is the weights' part of a key computed before (by the
        estimator this one was saved from)."""
        self._cache_key, self._cache_info = model_key(
            self.backbone_,
            backbone_name=self.backbone_name_,
            weights_id=self.weights_id_ if weights is None else weights,
            preprocessing=self.preprocessing_,
            layers=self._layers,
            pooling=self.pooling,
            precision=self.precision,
            device=self.device_,
            lazy=lazy,
            compile=self.compile,
        )

    def _first_readable(self, data):
        """The first sample of ``data`` that can be read (skipping unreadable
        images when ``on_error="warn"``), to run one forward pass in fit."""
        if not isinstance(data, ImageSequence):
            return data[:1]
        first_error = None
        for i in range(len(data)):
            try:
                data[i]
            except (ValueError, OSError) as exc:
                if self.on_error == "raise":
                    raise
                first_error = first_error or exc
                continue
            return data.subset([i])
        raise ValueError(
            f"{self._name}: none of the {len(data)} images in X can be read, so "
            f"fit cannot run the backbone. First error: "
            f"{getattr(first_error, 'reason', first_error)}"
        ) from first_error

    def transform(self, X):
        """Features of the images in ``X``.

        Parameters
        ----------
        X : images
            A sequence (list, tuple, pandas Series) of paths, PIL images, arrays
            (H, W[, C]) or tensors (C, H, W); an array (N, H, W[, C]) with C in
            {1, 3, 4}, uint8 (0-255) or float (0-1); a tensor (N, C, H, W); or
            2-D flattened pixels with ``image_shape``. Grayscale, RGBA and
            palette images are converted to the channels the backbone needs.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), float32
            One row of pooled backbone features per image; ``n_features``
            is ``n_features_out_``.
        """
        check_is_fitted(self)
        data = self._input_spec.read(self, X, reset=False)
        return self._extract(data)

    def _extract(self, data, store=True):
        if getattr(self, "_cache_key", None) is None:
            return self._compute(data)
        keys = image_keys(data, self._n_threads)
        return cached_rows(
            self._cache,
            self._cache_key,
            keys,
            lambda rows: self._compute(data, rows, n_total=len(keys), stacklevel=6),
            store=store,
            description=self._cache_info,
        )

    def _compute(self, data, indices=None, n_total=None, stacklevel=4):
        """Run the backbone on ``data`` (the rows ``indices``, default all)."""
        n = len(data) if indices is None else len(indices)
        n_total = n if n_total is None else n_total
        model = self.backbone_  # built here if fit did not need it
        with progress_bar(n, self.verbose > 0, self.backbone_name_) as bar:
            features, failures = self._infer(
                model,
                data,
                indices=indices,
                n_threads=self._n_threads,
                on_error=self.on_error,
                precision=self.precision,
                channels_last=self._channels_last,
                progress=bar,
                n_features=getattr(self, "n_features_out_", None),
            )
        if failures:
            listed = " ".join(
                getattr(b.error, "reason", str(b.error)) for b in failures[:10]
            )
            warnings.warn(
                f"{self._name}: {len(failures)} of {n_total} images could not be read; their "
                f"rows are NaN: {listed}" + (" ..." if len(failures) > 10 else ""),
                UserWarning,
                stacklevel=stacklevel,  # the caller of transform or fit
            )
        return features

    @property
    def _n_threads(self):
        return _DEFAULT_THREADS if self.n_jobs is None else self.n_jobs

    def get_feature_names_out(self, input_features=None):
        """Names ``"<layer>_<i>"`` (``"features_<i>"`` for the default layer).

        Parameters
        ----------
        input_features : None
            Ignored: the output features do not derive from input columns.

        Returns
        -------
        feature_names_out : ndarray of str objects, shape (n_features,)
            One name per output column (``n_features_out_`` of them).
        """
        check_is_fitted(self)
        if self._layers is None or len(self._layers) > 1:
            prefix = "features" if self._layers is None else "+".join(self._layers)
        else:
            prefix = self._layers[0]
        return np.asarray(
            [f"{prefix}_{i}" for i in range(self.n_features_out_)], dtype=object
        )

    # -- saving without pickle: sktransfer.save / sktransfer.load ---------
    def _export(self):
        """Tensors and JSON-able fitted attributes, for :func:`sktransfer.save`."""
        tensors = {
            f"backbone.{k}": v for k, v in self.backbone_.body.state_dict().items()
        }
        fitted = {
            "n_features_out_": int(self.n_features_out_),
            **resolved_attributes(self),
        }
        if getattr(self, "_cache_key", None) is not None:
            # The weights' part of the feature cache key; the loaded extractor,
            # whose weights come from a state dict, finds the same cached vectors.
            fitted["cache_weights"] = self._cache_info["weights"]
        return tensors, fitted

    def _restore(self, tensors, fitted, device):
        """Rebuild the fitted extractor :meth:`_export` described: fit on one
        blank input with the saved weights and preprocessing, then take back
        its own parameters."""
        params = self.get_params(deep=False)
        body = {
            k[len("backbone.") :]: v
            for k, v in tensors.items()
            if k.startswith("backbone.")
        }
        # The saved body lacks the classification head when layer=None (the
        # features never use it): complete the state dict with a random head.
        loaded = self._architecture()
        weights = {**loaded.model.state_dict(), **body}
        pre = fitted["preprocessing_"]
        preprocessing = (
            "passthrough"
            if pre is None
            else {k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()}
        )
        self.set_params(weights=weights, preprocessing=preprocessing, device=device)
        self.fit(_blank_input(fitted, params["image_shape"]))
        self.set_params(
            **{k: params[k] for k in ("weights", "preprocessing", "device")}
        )
        if self.n_features_out_ != fitted["n_features_out_"]:
            raise ValueError(
                f"sktransfer.load: the rebuilt {params['backbone']!r} gives "
                f"{self.n_features_out_} features, the saved extractor "
                f"{fitted['n_features_out_']}; the backbone registered under this "
                f"name is not the one it was saved with."
            )
        self.weights_id_ = fitted["weights_id_"]
        if self._cache is not None:
            self._set_cache_key(weights=fitted.get("cache_weights"))
        restore_input_attributes(self, fitted)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = False
        return tags


def _blank_input(fitted, image_shape):
    """One input of the kind the saved extractor was fitted on (zeros)."""
    pre = fitted["preprocessing_"]
    if pre is None:  # passthrough: one sample of the shape fit saw
        shape = fitted.get("input_sample_shape") or [fitted["n_features_in_"]]
        return np.zeros([1, *shape], np.float32)
    if image_shape is not None:
        return np.zeros((1, int(np.prod(image_shape))), np.uint8)
    size = pre["crop_size"] or pre["resize_size"] or 224
    h, w = (size, size) if isinstance(size, int) else size
    return np.zeros((1, h, w, 3), np.uint8)
