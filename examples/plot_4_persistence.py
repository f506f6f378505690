"""
Saving and loading
==================

:func:`sktransfer.save` writes a fitted estimator to a folder of JSON and
safetensors files; :func:`sktransfer.load` reads it back without unpickling,
so loading runs no code from the folder.
"""

import tempfile
from pathlib import Path

import numpy as np

import sktransfer
from sktransfer import FineTunedClassifier
from sktransfer.datasets import load_digits_images, subsample_per_class

digits = load_digits_images()
X, y = subsample_per_class(digits.images, digits.target, 10, random_state=0)

# A linear probe trained as a network: the backbone stays frozen.
clf = FineTunedClassifier(
    "efficientnet_lite0",
    freeze="backbone",
    augment="off",
    max_epochs=2,
    preprocessing={"resize_size": 64, "crop_size": 64},
    random_state=0,
).fit(X, y)

with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp) / "digits-classifier"
    sktransfer.save(clf, folder)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(folder)}: {path.stat().st_size / 1e6:.2f} MB")
    loaded = sktransfer.load(folder, device="cpu")

test = digits.images[:200]
print(
    "same predictions after loading:",
    np.array_equal(loaded.predict(test), clf.predict(test)),
)
