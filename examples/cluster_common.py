"""Shared by the cluster examples: a folder of small PNG images and a search."""

from pathlib import Path

from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import PretrainedFeatureExtractor
from sktransfer.datasets import load_fashion_mnist_sample


def image_files(folder, n=120):
    """The first ``n`` images of the Fashion-MNIST sample, as PNG files."""
    X, y = load_fashion_mnist_sample(return_X_y=True)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(X[:n]):
        path = folder / f"{i:05d}.png"
        if not path.exists():
            Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths, y[:n]


def search(cache_folder, Cs):
    """GridSearchCV of EfficientNet-Lite0 features (64 px) + a linear head."""
    pipe = make_pipeline(
        PretrainedFeatureExtractor(
            "efficientnet_lite0",
            preprocessing={"resize_size": 64, "crop_size": 64},
            device="cpu",
            n_jobs=1,
            cache=cache_folder,
        ),
        LogisticRegression(max_iter=500),
    )
    return GridSearchCV(pipe, {"logisticregression__C": Cs}, cv=3, n_jobs=2)
