"""scikit-learn's estimator checks on every sktransfer estimator.

The instances use backbones that take 2-D float input (``TinyMLP``, whose
first layer is lazy and adapts to any number of features), so the checks run
the real estimators end to end on the data scikit-learn generates.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
)
from sktransfer._testing import TinyMLP

# Fine-tuning on the checks' small tabular data sets: full training at a high
# learning rate, enough epochs for check_classifiers_train and friends.
_FINETUNE = dict(
    preprocessing="passthrough",
    augment="off",
    max_epochs=10,
    lr=3e-2,
    backbone_lr_ratio=1.0,
    random_state=0,
)

# Fast instances: a few milliseconds per fit.
ESTIMATORS = [
    PretrainedFeatureExtractor(TinyMLP(), preprocessing="passthrough"),
    FineTunedClassifier(TinyMLP(), **_FINETUNE),
    FineTunedRegressor(TinyMLP(), **_FINETUNE),
]

# check name -> why it cannot pass, for the estimators above. Checks listed
# here are strict expected failures: one that starts to pass fails the suite,
# so the table stays accurate. If an entry applies to only some estimators,
# key a dict per estimator class and select it in _expected_failed_checks.
EXPECTED_FAILED_CHECKS = {
    "check_estimators_overwrite_params": (
        "compares joblib.hash of each parameter before and after fit, and the "
        "hash of an nn.Module includes the memory addresses of its tensors' "
        "storage, so a deep copy never hashes equal to the module it copies; "
        "tests/test_extractor.py::test_fit_never_mutates_the_users_module "
        "and tests/test_finetune.py::test_freezing_keeps_frozen_blocks_and_"
        "batchnorm_stats check the module's state dict instead"
    ),
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=_expected_failed_checks, xfail_strict=True
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
