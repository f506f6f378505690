"""Ctrl-C during fit, and checkpoints that let a fit resume.

A KeyboardInterrupt raised by a user callback (``net_params={"callbacks":
[...]}``, run after sktransfer's own) stands for Ctrl-C. Everything runs on
the CPU with TinyConvNet on 12 px images.
"""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._checkpoint import CHECKPOINT_FILE, _classes_text
from sktransfer._testing import TinyConvNet, make_shapes_dataset

X, Y = make_shapes_dataset(n_per_class=8, size=12)
PARAMS = dict(
    preprocessing={"resize_size": 12, "crop_size": 12},
    max_epochs=5,
    batch_size=4,
    lr=3e-2,
    augment="default",
    random_state=0,
    device="cpu",
)


def tiny():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyConvNet(width=4)


class Interrupt(Callback):
    """Raises KeyboardInterrupt once: at the end of epoch ``epoch``, or at its
    third batch (``during=True``)."""

    def __init__(self, epoch, during=False):
        self.epoch = epoch
        self.during = during

    def initialize(self):
        self.batches_ = 0
        return self

    def _maybe_raise(self, net):
        if len(net.history) == self.epoch and not getattr(self, "raised_", False):
            self.raised_ = True
            raise KeyboardInterrupt

    def on_batch_begin(self, net, training=False, **kwargs):
        if self.during and training:
            self.batches_ += 1
            if self.batches_ > 2:
                self._maybe_raise(net)

    def on_epoch_begin(self, net, **kwargs):
        self.batches_ = 0

    def on_epoch_end(self, net, **kwargs):
        if not self.during:
            self._maybe_raise(net)


class Snapshots(Callback):
    """The module's weights at the end of every epoch."""

    def initialize(self):
        self.states_ = {}
        return self

    def on_epoch_end(self, net, **kwargs):
        self.states_[len(net.history)] = copy.deepcopy(net.module_.state_dict())


def assert_same_weights(module, state):
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)


@pytest.fixture(scope="module")
def uninterrupted():
    return FineTunedClassifier(tiny(), **PARAMS).fit(X, Y)


@pytest.mark.parametrize("during", [False, True], ids=["after epoch", "mid-epoch"])
def test_ctrl_c_keeps_the_best_epoch_and_warns(during):
    snapshots = Snapshots()
    clf = FineTunedClassifier(
        tiny(), **PARAMS, net_params={"callbacks": [snapshots, Interrupt(3, during)]}
    )
    when = "during epoch 3" if during else "after epoch 3"
    with pytest.warns(
        UserWarning,
        match=re.escape(
            f"FineTunedClassifier: training was interrupted (KeyboardInterrupt) "
            f"{when} of 5; the fitted estimator keeps the weights of epoch "
        ),
    ):
        clf.fit(X, Y)
    completed = 2 if during else 3
    losses = [row["train_loss"] for row in clf.history_]
    assert clf.n_epochs_ == len(losses) == completed  # no unfinished epoch
    best = int(np.argmin(losses)) + 1
    assert_same_weights(clf.net_.module_, snapshots.states_[best])
    # A usable, fitted estimator.
    assert clf.predict(X).shape == (16,) and set(clf.classes_) == {"disk", "square"}
    assert not clf.net_.module_.training


def test_ctrl_c_with_early_stopping_keeps_the_best_validation_epoch():
    snapshots = Snapshots()
    clf = FineTunedRegressor(
        tiny(),
        **{**PARAMS, "max_epochs": 6},
        early_stopping=True,
        n_iter_no_change=5,
        validation_fraction=0.25,
        net_params={"callbacks": [snapshots, Interrupt(4)]},
    )
    with pytest.warns(
        UserWarning,
        match=r"interrupted \(KeyboardInterrupt\) after "
        r"epoch 4 of 6; the fitted estimator keeps the weights of "
        r"epoch (\d), the best so far \(valid_loss=",
    ) as record:
        clf.fit(X, (Y == "disk").astype(float))
    best = int(re.search(r"weights of epoch (\d)", str(record[0].message))[1])
    losses = [row["valid_loss"] for row in clf.history_]
    assert best == int(np.argmin(losses)) + 1 and clf.n_epochs_ == 4
    assert_same_weights(clf.net_.module_, snapshots.states_[best])


def test_ctrl_c_in_the_first_epoch_is_raised():
    clf = FineTunedClassifier(
        tiny(), **PARAMS, net_params={"callbacks": [Interrupt(1, during=True)]}
    )
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, Y)
    with pytest.raises(NotFittedError):
        clf.predict(X)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_resume_from_checkpoint_equals_an_uninterrupted_fit(
    early_stopping, tmp_path, uninterrupted
):
    params = dict(PARAMS, early_stopping=early_stopping, validation_fraction=0.25)
    reference = (
        uninterrupted
        if not early_stopping
        else FineTunedClassifier(tiny(), **params).fit(X, Y)
    )
    interrupt = Interrupt(2)
    clf = FineTunedClassifier(
        tiny(), **params, checkpoint_dir=tmp_path, net_params={"callbacks": [interrupt]}
    )
    with pytest.warns(
        UserWarning,
        match=re.escape(
            "after epoch 2 of 5; the fitted estimator keeps the weights of epoch "
        )
        + r".*"
        + re.escape(
            f"Call fit again to resume from the checkpoint in {str(tmp_path)!r}."
        ),
    ):
        clf.fit(X, Y)
    assert clf.n_epochs_ == 2 and (tmp_path / CHECKPOINT_FILE).is_file()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # resuming is silent
        clf.fit(X, Y)  # the same estimator, parameters and data: resumes
    assert clf.n_epochs_ == reference.n_epochs_
    for key in ("train_loss", "valid_loss", "valid_acc", "lr"):
        assert [r.get(key) for r in clf.history_] == [
            r.get(key) for r in reference.history_
        ]
    np.testing.assert_array_equal(clf.predict_proba(X), reference.predict_proba(X))


def test_finished_checkpoint_gives_the_model_without_training(tmp_path):
    first = FineTunedClassifier(tiny(), **PARAMS, checkpoint_dir=tmp_path).fit(X, Y)
    again = FineTunedClassifier(tiny(), **PARAMS, checkpoint_dir=tmp_path).fit(X, Y)
    assert again.history_ == [
        {k: v for k, v in row.items()} for row in first.history_
    ]  # same durations
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))


def test_checkpoint_of_another_run_is_ignored_with_a_warning(tmp_path, uninterrupted):
    FineTunedClassifier(
        tiny(), **{**PARAMS, "lr": 1e-2, "max_epochs": 2}, checkpoint_dir=tmp_path
    ).fit(X, Y)
    with pytest.warns(
        UserWarning,
        match=re.escape(
            f"FineTunedClassifier: the checkpoint "
            f"{str(tmp_path / CHECKPOINT_FILE)!r} belongs to another training run "
            f"(other parameters: lr, max_epochs); it is ignored, training starts "
            f"from scratch and overwrites it."
        ),
    ):
        clf = FineTunedClassifier(tiny(), **PARAMS, checkpoint_dir=tmp_path).fit(X, Y)
    np.testing.assert_array_equal(clf.predict_proba(X), uninterrupted.predict_proba(X))
    with pytest.warns(
        UserWarning,
        match=r"belongs to another training run \(other "
        r"training data\)",
    ):
        FineTunedClassifier(tiny(), **PARAMS, checkpoint_dir=tmp_path).fit(
            X[:12], Y[:12]
        )


def test_checkpoint_is_plain_data_and_a_broken_one_is_replaced(tmp_path):
    FineTunedClassifier(
        tiny(), **{**PARAMS, "max_epochs": 1}, checkpoint_dir=tmp_path
    ).fit(X, Y)
    path = tmp_path / CHECKPOINT_FILE
    ckpt = torch.load(path, weights_only=True)  # no pickled objects inside
    assert ckpt["epoch"] == 1 and ckpt["finished"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(
        UserWarning,
        match=re.escape(
            f"FineTunedClassifier: cannot read the checkpoint {str(path)!r} ("
        ),
    ):
        clf = FineTunedClassifier(
            tiny(), **{**PARAMS, "max_epochs": 1}, checkpoint_dir=tmp_path
        ).fit(X, Y)
    assert clf.n_epochs_ == 1 and torch.load(path, weights_only=True)["epoch"] == 1


_CLASSES = {
    "int64": (np.array([0, 1, 2]), "[np.int64(0), np.int64(1), np.int64(2)]"),
    "int32": (np.array([0, 7], dtype=np.int32), "[np.int32(0), np.int32(7)]"),
    "float32": (
        np.array([0.1, 1e20], dtype=np.float32),
        "[np.float32(0.1), np.float32(1e+20)]",
    ),
    "float64": (np.array([0.5, 0.1]), "[np.float64(0.5), np.float64(0.1)]"),
    "str": (np.array(["cat", "o'dog"]), "[np.str_('cat'), np.str_(\"o'dog\")]"),
    "bytes": (np.array([b"x"]), "[np.bytes_(b'x')]"),
    "bool": (np.array([False, True]), "[np.False_, np.True_]"),
    "object": (np.array([1, "a"], dtype=object), "[1, 'a']"),
}


@pytest.mark.parametrize("name", sorted(_CLASSES))
def test_run_identity_spells_classes_as_numpy_2_under_any_numpy(name):
    # Checkpoints written under NumPy 2 (the compatibility fixtures among
    # them) hashed repr(list(classes_)); NumPy 1 writes np.int64(0) as 0, so
    # the text is spelled out and a checkpoint survives a change of NumPy.
    classes, text = _CLASSES[name]
    assert _classes_text(classes) == text
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        assert repr(list(classes)) == text
