"""Classifier conventions (predict_log_proba, decision_function, n_iter_),
warm_start, and augment presets on tabular (passthrough) input."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._testing import TinyMLP, assert_allclose_float32

_KW = dict(preprocessing="passthrough", max_epochs=4, lr=3e-2, random_state=0)


def _data(n=48, d=4, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    score = X[:, 0] + 0.5 * X[:, 1]
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    labels = np.array(["ant", "bee", "cat", "dog"])[:n_classes]
    return X, labels[y], X[:, 0] - X[:, 2]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_log_proba_and_decision_function_follow_the_logits(n_classes):
    X, y, _ = _data(n_classes=n_classes)
    clf = FineTunedClassifier(TinyMLP(), **_KW).fit(X, y)
    logits = clf.net_.module_(torch.from_numpy(X)).detach().numpy()
    log_proba = clf.predict_log_proba(X)
    assert log_proba.shape == (len(X), n_classes)
    assert_allclose_float32(np.exp(log_proba), clf.predict_proba(X))
    scores = clf.decision_function(X)
    if n_classes == 2:
        assert scores.shape == (len(X),)
        assert_allclose_float32(scores, logits[:, 1] - logits[:, 0])
        np.testing.assert_array_equal(
            clf.classes_[(scores > 0).astype(int)], clf.predict(X)
        )
    else:
        assert scores.shape == (len(X), n_classes)
        assert_allclose_float32(scores, logits)
        np.testing.assert_array_equal(clf.classes_[scores.argmax(1)], clf.predict(X))


def test_log_proba_is_finite_where_proba_underflows():
    X, y, _ = _data()
    clf = FineTunedClassifier(TinyMLP(), **_KW).fit(X, y)
    with torch.no_grad():
        clf.net_.module_.head.weight.mul_(1e4)  # saturate the softmax
    assert (clf.predict_proba(X) == 0).any()
    assert np.isfinite(clf.predict_log_proba(X)).all()


def test_decision_function_needs_a_fitted_estimator():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FineTunedClassifier(TinyMLP()).decision_function(np.zeros((2, 4)))


@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
def test_n_iter_counts_the_epochs_run(cls):
    X, y_clf, y_reg = _data()
    y = y_clf if cls is FineTunedClassifier else y_reg
    est = cls(TinyMLP(), **_KW).fit(X, y)
    assert est.n_iter_ == est.n_epochs_ == len(est.history_) == 4
    stopped = cls(
        TinyMLP(), early_stopping=True, n_iter_no_change=1, **{**_KW, "lr": 1.0}
    ).set_params(max_epochs=30)
    stopped.fit(X, y)
    assert stopped.n_iter_ == len(stopped.history_) < 30


# -- warm_start ------------------------------------------------------------------
@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
def test_warm_start_continues_the_fitted_network(cls):
    X, y_clf, y_reg = _data()
    y = y_clf if cls is FineTunedClassifier else y_reg
    # head_init="random": a new network starts from a random head.
    est = cls(TinyMLP(), warm_start=True, head_init="random", **_KW).fit(X, y)
    module = est.net_.module_
    before = {k: v.clone() for k, v in module.state_dict().items()}
    first_loss = est.history_[-1]["train_loss"]
    # At a learning rate of ~0 the continued fit changes nothing: no new
    # head, no new linear probe, no re-initialisation.
    est.set_params(lr=1e-30, max_epochs=1).fit(X, y)
    assert est.net_.module_ is module
    for k, v in module.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k].numpy(), err_msg=k)
    assert est.n_iter_ == 1
    # Training on starts from the fitted loss, not from a new network's.
    est.set_params(lr=3e-2, max_epochs=2).fit(X, y)
    cold = clone(est).set_params(warm_start=False).fit(X, y)
    assert est.history_[0]["train_loss"] < cold.history_[0]["train_loss"]
    assert est.history_[0]["train_loss"] < 2 * first_loss


def test_warm_start_restarts_the_schedule():
    X, y, _ = _data()
    est = FineTunedClassifier(TinyMLP(), warm_start=True, **_KW).fit(X, y)
    first = [row["lr"] for row in est.history_]
    est.fit(X, y)
    assert [row["lr"] for row in est.history_] == pytest.approx(first)


def test_without_warm_start_fit_starts_again():
    X, y, _ = _data()
    est = FineTunedClassifier(TinyMLP(), **_KW).fit(X, y)
    proba = est.predict_proba(X)
    est.fit(X, y)
    assert_allclose_float32(est.predict_proba(X), proba)


def test_warm_start_with_a_frozen_backbone():
    X, y, _ = _data()
    est = FineTunedClassifier(
        TinyMLP(), freeze="backbone", augment="off", warm_start=True, **_KW
    ).fit(X, y)
    body = {k: v.clone() for k, v in est.net_.module_.body.state_dict().items()}
    est.fit(X, y)
    for k, v in est.net_.module_.body.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), body[k].numpy())


def test_warm_start_refuses_other_classes():
    X, y, _ = _data(n_classes=3)
    est = FineTunedClassifier(TinyMLP(), warm_start=True, **_KW).fit(X, y)
    y2 = np.where(y == "cat", "dog", y)
    with pytest.raises(
        ValueError,
        match=r"FineTunedClassifier: warm_start=True continues a network trained "
        r"on the classes \['ant', 'bee', 'cat'\], but y has the classes "
        r"\['ant', 'bee', 'dog'\]; set warm_start=False",
    ):
        est.fit(X, y2)
    assert hasattr(est, "net_")  # refused before anything changed
    np.testing.assert_array_equal(est.classes_, ["ant", "bee", "cat"])


@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
def test_warm_start_refuses_another_number_of_features(cls):
    X, y_clf, y_reg = _data()
    y = y_clf if cls is FineTunedClassifier else y_reg
    est = cls(TinyMLP(), warm_start=True, **_KW).fit(X, y)
    with pytest.raises(
        ValueError,
        match=rf"{cls.__name__}: warm_start=True continues a network fitted on "
        r"samples of shape \(4,\), but X has samples of shape \(5,\)",
    ):
        est.fit(np.hstack([X, X[:, :1]]), y)
    assert hasattr(est, "net_")
    with pytest.raises(ValueError, match="samples of shape"):
        est.fit(np.hstack([X, X[:, :1]]).tolist(), y)  # no .shape: read first


def test_warm_start_refuses_another_number_of_outputs():
    X, _, y = _data()
    est = FineTunedRegressor(TinyMLP(), warm_start=True, **_KW).fit(X, y)
    with pytest.raises(
        ValueError,
        match=r"FineTunedRegressor: warm_start=True continues a network with 1 "
        r"outputs, but y has 2",
    ):
        est.fit(X, np.c_[y, y])


def test_warm_start_refuses_a_checkpoint_dir(tmp_path):
    X, y, _ = _data()
    est = FineTunedClassifier(
        TinyMLP(), warm_start=True, checkpoint_dir=tmp_path, **_KW
    ).fit(X, y)
    with pytest.raises(ValueError, match="warm_start=True with checkpoint_dir"):
        est.fit(X, y)


def test_net_params_warm_start_points_to_the_parameter():
    X, y, _ = _data()
    est = FineTunedClassifier(TinyMLP(), net_params={"warm_start": True}, **_KW)
    with pytest.raises(
        ValueError,
        match=r"net_params\['warm_start'\] has no effect .* use the parameter "
        r"warm_start=True",
    ):
        est.fit(X, y)


def test_warm_start_must_be_a_bool():
    X, y, _ = _data()
    with pytest.raises(ValueError, match="warm_start must be True or False, got 1"):
        FineTunedClassifier(TinyMLP(), warm_start=1, **_KW).fit(X, y)


# -- augment presets on tabular input ---------------------------------------------
@pytest.mark.parametrize("augment", ["default", "light"])
def test_augment_presets_mean_no_augmentation_on_rows_of_numbers(augment):
    X, y, _ = _data()
    off = FineTunedClassifier(TinyMLP(), augment="off", **_KW).fit(X, y)
    preset = FineTunedClassifier(TinyMLP(), augment=augment, **_KW).fit(X, y)
    np.testing.assert_array_equal(preset.predict_proba(X), off.predict_proba(X))


def test_passthrough_images_and_train_transform_still_need_augment_off():
    X4 = np.random.default_rng(0).random((8, 1, 4, 4)).astype(np.float32)
    y = np.array([0, 1] * 4)
    with pytest.raises(
        ValueError,
        match="FineTunedClassifier: augment='light' applies to preprocessed "
        "images; with preprocessing='passthrough' and image-shaped X set "
        "augment='off'",
    ):
        FineTunedClassifier(TinyMLP(), augment="light", **_KW).fit(X4, y)
    X, y2, _ = _data()
    with pytest.raises(
        ValueError,
        match="FineTunedClassifier: train_transform applies to images, which "
        "preprocessing='passthrough' does not make; set train_transform=None",
    ):
        FineTunedClassifier(
            TinyMLP(), augment="off", train_transform=lambda x: x, **_KW
        ).fit(X, y2)


def test_user_guide_section_runs(capsys):
    import re
    from pathlib import Path

    guide = (Path(__file__).parents[1] / "docs" / "user_guide.md").read_text()
    section = guide.split("## Sample weights and continued training")[1]
    section = section.split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3
    namespace = {"__name__": "user_guide"}
    for block in blocks:
        exec(compile(block, "docs/user_guide.md", "exec"), namespace)
    out = capsys.readouterr().out.split()
    assert float(out[0]) < 1e-4  # weights vs repetition, one batch an epoch
    assert out[1:] == ["2", "(3,)"]
