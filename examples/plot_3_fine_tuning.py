"""
Fine-tuning
===========

:class:`~sktransfer.FineTunedClassifier` trains the whole network (the head
starts at the linear probe's solution) with the same ``fit`` / ``predict`` as
any scikit-learn classifier. Its training history is kept in ``history_``.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from sktransfer import FineTunedClassifier
from sktransfer.datasets import load_digits_images, subsample_per_class

digits = load_digits_images()
X, y = subsample_per_class(digits.images, digits.target, 20, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
)

clf = FineTunedClassifier(
    "efficientnet_lite0",
    preprocessing={"resize_size": 64, "crop_size": 64},
    max_epochs=3,
    lr=1e-3,
    random_state=0,
).fit(X_train, y_train)
print(f"held-out accuracy: {np.mean(clf.predict(X_test) == y_test):.3f}")

# %%
# The loss of each epoch (skorch's history).
plt.plot([h["epoch"] for h in clf.history_], [h["train_loss"] for h in clf.history_])
plt.xlabel("epoch")
plt.ylabel("training loss")
plt.show()
