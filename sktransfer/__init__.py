"""sktransfer: pretrained deep backbones as scikit-learn estimators.

Importing sktransfer does no work: torch and the estimators are imported when
a public name is first used.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "PretrainedFeatureExtractor": "._extractor",
    "FeatureCache": "._cache",
    "FineTunedClassifier": "._finetune",
    "FineTunedRegressor": "._finetune",
    "Preprocessing": "._preprocessing",
    "BackboneSpec": ".backbones",
    "WeightsUnavailableError": ".backbones",
    "list_backbones": ".backbones",
    "register_backbone": ".backbones",
    "save": "._persistence",
    "export_onnx": "._export",
    "plot_explanation": "._explain",
    "load": "._persistence",
    "skops_trusted_types": "._persistence",
    "logme_score": "._transferability",
    "logme_scorer": "._transferability",
    "rank_backbones": "._transferability",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sktransfer' has no attribute {name!r}")


def __dir__():
    return __all__
