"""What the three estimators share: resolving the backbone, seeding, inference.

``fit`` of every estimator resolves its recipe the same way
(:meth:`PretrainedEstimator._resolve`: backbone and weights, device,
preprocessing, input spec) and runs networks over ``X`` the same way
(:meth:`PretrainedEstimator._infer`: batches prepared in background threads,
``torch.inference_mode``, optional autocast).

Seeding rule (all estimators): ``random_state`` None behaves as 0, so an
estimator is reproducible unless it is given a ``RandomState``. The seed of
the backbone's initialisation (random weights, lazy modules) is the int
itself; the seed of training (head, shuffling, augmentation, validation split)
is drawn from ``numpy.random.RandomState(random_state)``. A ``RandomState``
gives a new draw for each use.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from ._accelerate import make_accelerator
from ._device import resolve_device
from ._inference import iter_array_batches, iter_image_batches, run_inference
from ._input_spec import InputSpec
from ._params import validate_params
from ._state import PlainPickleMixin
from .backbones._load import load_backbone


def init_seed(random_state):
    """The torch seed of a backbone's initialisation (None -> 0)."""
    if random_state is None:
        return 0
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    return int(random_state)


def training_seed(random_state):
    """The torch seed of a training run (None -> as 0)."""
    rng = check_random_state(0 if random_state is None else random_state)
    return int(rng.randint(np.iinfo(np.int32).max))


class PretrainedEstimator(PlainPickleMixin, BaseEstimator):
    """Base of the estimators: a recipe resolved in ``fit``.

    Subclasses set ``_params`` (their parameter table, see ``_params``) and
    ``_fitted_attribute``; error messages name ``type(self).__name__``.
    """

    _params = ()
    _accelerator = None  # set by fit while an accelerator is in use

    def _store_params(self, values):
        """The body of ``__init__``: store every parameter of the table as
        passed (``values`` is the ``__init__``'s ``locals()``), nothing else."""
        for param in self._params:
            setattr(self, param.name, values[param.name])

    def _check_params(self):
        validate_params(self, self._params)

    @property
    def _name(self):
        return type(self).__name__

    def _resolve(self):
        """Load backbone and weights, pick the device and the preprocessing;
        set ``device_``, ``preprocessing_``, ``weights_id_``,
        ``backbone_name_`` and the input spec. Returns the LoadedBackbone."""
        loaded = load_backbone(
            self.backbone,
            self.weights,
            preprocessing=self.preprocessing,
            seed=init_seed(self.random_state),
            owner=self._name,
        )
        accelerator = make_accelerator(
            getattr(self, "accelerator", None),
            self._name,
            getattr(self, "precision", "float32"),
        )
        # An instance attribute only while an accelerator is in use (a process
        # bound object, not part of the pickled state; the class says None).
        self.__dict__.pop("_accelerator", None)
        if accelerator is not None:  # it places the module (its process's GPU)
            self._accelerator = accelerator
            self.device_ = accelerator.device
        else:
            self.device_ = resolve_device(self.device, self._name)
        self._set_resolved(
            loaded.preprocessing, loaded.weights_id, loaded.name, self.device_
        )
        return loaded

    def _set_resolved(self, preprocessing, weights_id, backbone_name, device):
        self.device_ = device
        self.preprocessing_ = preprocessing
        self.weights_id_ = weights_id
        self.backbone_name_ = backbone_name
        self._input_spec = InputSpec.create(self, preprocessing, self._name)

    def _architecture(self):
        """The backbone with random weights (nothing downloaded), to load
        saved weights into."""
        return load_backbone(
            self.backbone,
            None,
            preprocessing=None,
            seed=init_seed(self.random_state),
            owner=self._name,
        )

    def _infer(
        self,
        model,
        data,
        *,
        indices=None,
        n_threads=1,
        on_error="raise",
        precision=None,
        channels_last=False,
        progress=None,
        n_features=None,
    ):
        """Run ``model`` (in eval mode) over ``data`` (an ImageSequence or a
        tensor; the rows ``indices``, default all). Returns (float32 array,
        list of BadImage). ``precision`` None: the estimator's own."""
        model.eval()
        if precision is None:
            precision = getattr(self, "precision", "float32")
        n = len(data) if indices is None else len(indices)
        if isinstance(data, torch.Tensor):
            if indices is not None:
                data = data[indices]
            batches = iter_array_batches(data, self.batch_size)
        else:
            batches = iter_image_batches(
                data,
                self.preprocessing_,
                self.batch_size,
                n_threads=n_threads,
                on_error=on_error,
                indices=indices,
                channels_last=channels_last,
                pin_memory=self.device_.type == "cuda",
            )
        return run_inference(
            model,
            batches,
            n,
            device=self.device_,
            precision=precision,
            channels_last=channels_last,
            progress=progress,
            n_features=n_features,
        )
