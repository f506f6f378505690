"""
GridSearchCV over backbone and layer, with a feature cache
==========================================================

The backbone and the layer it is read at are hyperparameters like any other.
A :class:`~sktransfer.FeatureCache` shared by the search keeps the features
of every (backbone, layer, image) computed once: cross-validation folds and
the final refit read them back instead of running the network again.
"""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sktransfer import FeatureCache, PretrainedFeatureExtractor
from sktransfer.datasets import load_digits_images, subsample_per_class

digits = load_digits_images()
X, y = subsample_per_class(digits.images, digits.target, 10, random_state=0)

cache = FeatureCache()  # in memory, this process
small = {"resize_size": 64, "crop_size": 64}
pipe = Pipeline(
    [
        (
            "features",
            PretrainedFeatureExtractor(preprocessing=small, cache=cache),
        ),
        ("clf", LogisticRegression(max_iter=1000)),
    ]
)
grid = {
    "features__backbone": ["efficientnet_lite0", "efficientnet_lite1"],
    "features__layer": [None, "blocks.4"],
}
search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
print("best:", search.best_params_, f"accuracy {search.best_score_:.3f}")
print(f"cache: {len(cache)} feature vectors, {cache.nbytes / 2**20:.1f} MiB")

# %%
# Mean cross-validated accuracy of each backbone and layer.
results = pd.DataFrame(search.cv_results_)
table = results.pivot_table(
    index=results["param_features__layer"].astype(str),
    columns="param_features__backbone",
    values="mean_test_score",
)
print(table)
table.plot.bar(rot=0, ylabel="mean CV accuracy", xlabel="layer")
plt.ylim(0, 1)
plt.show()
