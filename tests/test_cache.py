"""The feature cache: what its key holds, what it shares, bounds, disk safety."""

import os
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

import sktransfer
from sktransfer import FeatureCache, PretrainedFeatureExtractor
from sktransfer._cache import resolve_cache
from sktransfer._inputs import as_image_sequence
from sktransfer._testing import (
    TinyConvNet,
    TinyMLP,
    assert_allclose_float32,
    make_shapes_dataset,
    save_images,
)

SMALL = {"resize_size": 16, "crop_size": 16}


def seeded(module_cls, seed=0, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module_cls(**kwargs)


class OtherNet(TinyConvNet):
    """Same parameters as TinyConvNet, another class (another backbone)."""


def make_extractor(cache, **params):
    params = {
        "backbone": seeded(TinyConvNet),
        "preprocessing": SMALL,
        "device": "cpu",
        "cache": cache,
        **params,
    }
    return PretrainedFeatureExtractor(**params)


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (5, 20, 18, 3), dtype=np.uint8)


@pytest.fixture
def cache():
    return FeatureCache()


def fill(cache, images, **params):
    """Fit and transform with a fresh extractor; return its features."""
    extractor = make_extractor(cache, **params).fit(images)
    return extractor.transform(images)


# -- what the key holds: each change is a miss -------------------------------
VARIANTS = {
    "weights": {"backbone": seeded(TinyConvNet, seed=1)},
    "backbone": {"backbone": seeded(OtherNet)},
    "preprocessing resize_size": {
        "preprocessing": {"resize_size": 17, "crop_size": 16}
    },
    "preprocessing crop_size": {"preprocessing": {"resize_size": 16, "crop_size": 14}},
    "preprocessing interpolation": {
        "preprocessing": {**SMALL, "interpolation": "bicubic"}
    },
    "preprocessing mean": {"preprocessing": {**SMALL, "mean": (0.5, 0.5, 0.5)}},
    "preprocessing std": {"preprocessing": {**SMALL, "std": (0.5, 0.5, 0.5)}},
    "preprocessing channels": {
        "backbone": seeded(TinyConvNet, in_channels=1),
        "preprocessing": {**SMALL, "channels": 1, "mean": (0.5,), "std": (0.5,)},
    },
    "layer": {"layer": "block2"},
    "layers": {"layer": ["block1", "block2"]},
    "pooling": {"pooling": "max", "layer": "block2"},
    "precision": {"precision": "bfloat16"},
}


@pytest.mark.parametrize("change", VARIANTS, ids=list(VARIANTS))
def test_a_change_of_the_model_key_is_a_miss(change, cache, images):
    base = {"layer": "block2"} if change == "pooling" else {}
    fill(cache, images, **base)
    hits, size = cache.hits, len(cache)
    fill(cache, images, **VARIANTS[change])
    assert cache.hits == hits
    assert len(cache) == 2 * size == 2 * len(images)


def test_named_backbone_weights_are_in_the_key(cache, images):
    params = {
        "backbone": "resnet18",
        "weights": None,
        "preprocessing": {"resize_size": 32, "crop_size": 32},
    }
    a = fill(cache, images, random_state=0, **params)
    b = fill(cache, images, random_state=1, **params)
    assert len(cache) == 2 * len(images)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("module", [sktransfer, torch], ids=["sktransfer", "torch"])
def test_a_new_library_version_is_a_miss(module, monkeypatch, cache, images):
    fill(cache, images)
    hits = cache.hits
    monkeypatch.setattr(module, "__version__", module.__version__ + ".post1")
    fill(cache, images)
    assert cache.hits == hits
    assert len(cache) == 2 * len(images)


def test_changed_pixels_are_a_miss_and_the_rest_hit(cache, images):
    extractor = make_extractor(cache).fit(images)
    before = extractor.transform(images)
    changed = images.copy()
    changed[2, 0, 0, 0] ^= 1
    hits = cache.hits
    after = extractor.transform(changed)
    assert cache.hits - hits == len(images) - 1
    np.testing.assert_array_equal(np.delete(after, 2, 0), np.delete(before, 2, 0))
    assert not np.array_equal(after[2], before[2])


def test_changed_file_bytes_are_a_miss(cache, images, tmp_path):
    paths = save_images(tmp_path, images)
    extractor = make_extractor(cache).fit(paths)
    extractor.transform(paths)
    Image.fromarray(images[3][::-1].copy()).save(paths[3])
    hits = cache.hits
    extractor.transform(paths)
    assert cache.hits - hits == len(paths) - 1


def test_a_file_rewritten_with_its_old_size_and_times_gets_a_new_key(tmp_path):
    # Keys of unchanged files are remembered; a file rewritten in place with
    # the same size and its old modification time set back is read again.
    path, fresh = tmp_path / "a.png", tmp_path / "b.png"
    path.write_bytes(b"x" * 1000)
    old = as_image_sequence([path]).key(0)
    stat = os.stat(path)
    with open(path, "r+b") as f:
        f.write(b"y")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (
        stat.st_size,
        stat.st_mtime_ns,
    )
    fresh.write_bytes(b"y" + b"x" * 999)
    new = as_image_sequence([path]).key(0)
    assert new != old
    assert new == as_image_sequence([fresh]).key(0)


def test_unchanged_files_are_not_read_again_for_their_keys(
    images, tmp_path, monkeypatch
):
    from sktransfer import _files

    paths = save_images(tmp_path, images)
    first = [as_image_sequence(paths).key(i) for i in range(len(paths))]
    reads = []
    monkeypatch.setattr(_files, "hash_file", lambda h, path: reads.append(path) or h)
    assert [as_image_sequence(paths).key(i) for i in range(len(paths))] == first
    assert reads == []
    os.utime(paths[1])  # touched: its state changed, so it is read again
    as_image_sequence(paths).key(1)
    assert reads == [paths[1]]


# -- what is not in the key: hits --------------------------------------------
def test_hits_are_bitwise_identical_to_uncached_features(cache, images):
    expected = make_extractor(None).fit(images).transform(images)
    extractor = make_extractor(cache).fit(images)
    first = extractor.transform(images)
    hits = cache.hits
    second = extractor.transform(images)
    assert cache.hits - hits == len(images)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)
    assert second.dtype == np.float32


def test_same_content_at_another_position_hits(cache, images):
    extractor = make_extractor(cache).fit(images)
    features = extractor.transform(images)
    hits = cache.hits
    order = [4, 2, 0, 3, 1, 2]
    np.testing.assert_array_equal(extractor.transform(images[order]), features[order])
    assert cache.hits - hits == len(set(order))


@pytest.mark.parametrize("form", ["pil", "tensor", "list of arrays", "chw tensors"])
def test_same_pixels_in_another_container_hit(form, cache, images):
    extractor = make_extractor(cache).fit(images)
    features = extractor.transform(images)
    X = {
        "pil": [Image.fromarray(im) for im in images],
        "tensor": torch.from_numpy(images).permute(0, 3, 1, 2),
        "list of arrays": list(images),
        "chw tensors": [torch.from_numpy(im).permute(2, 0, 1) for im in images],
    }[form]
    hits = cache.hits
    np.testing.assert_array_equal(extractor.transform(X), features)
    assert cache.hits - hits == len(images)


def test_same_file_under_another_name_hits(cache, images, tmp_path):
    paths = save_images(tmp_path, images)
    copies = tmp_path / "copies"
    copies.mkdir()
    moved = [shutil.copy(p, copies / f"other{i}.png") for i, p in enumerate(paths)]
    extractor = make_extractor(cache).fit(paths)
    features = extractor.transform(paths)
    hits = cache.hits
    np.testing.assert_array_equal(extractor.transform(moved), features)
    assert cache.hits - hits == len(paths)


def test_passthrough_rows_are_cached_by_content(cache):
    X = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    extractor = PretrainedFeatureExtractor(
        TinyMLP(),
        preprocessing="passthrough",
        device="cpu",
        random_state=0,
        cache=cache,
    ).fit(X)
    features = extractor.transform(X)
    hits = cache.hits
    np.testing.assert_array_equal(extractor.transform(X[::-1]), features[::-1])
    assert cache.hits - hits == len(X)


def test_lazy_modules_are_keyed_by_their_initialised_weights(cache):
    X = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    params = {"preprocessing": "passthrough", "device": "cpu", "cache": cache}
    a = PretrainedFeatureExtractor(TinyMLP(), random_state=0, **params).fit(X)
    b = PretrainedFeatureExtractor(TinyMLP(), random_state=1, **params).fit(X)
    assert a._cache_key != b._cache_key
    assert not np.allclose(a.transform(X), b.transform(X))


# -- sharing -----------------------------------------------------------------
def test_clones_share_the_cache(cache, images):
    extractor = make_extractor(cache).fit(images)
    extractor.transform(images)
    hits = cache.hits
    twin = clone(extractor)
    assert twin.cache is cache
    twin.fit(images).transform(images)
    assert cache.hits - hits == 1 + len(images)


def test_memory_string_is_one_cache_per_process(images):
    shared = resolve_cache("memory", "test")
    shared.clear()
    a = make_extractor("memory").fit(images)
    a.transform(images)
    hits = shared.hits
    clone(a).fit(images).transform(images)
    assert shared.hits - hits == 1 + len(images)
    assert repr(shared) == "FeatureCache()"
    shared.clear()


def test_grid_search_scores_are_identical_with_the_cache(cache):
    X, y = make_shapes_dataset(n_per_class=12, size=16)
    grid = {"logisticregression__C": [0.1, 1.0, 10.0]}

    def search(cache):
        pipe = make_pipeline(make_extractor(cache), LogisticRegression())
        return GridSearchCV(pipe, grid, cv=3).fit(X, y)

    plain, cached = search(None), search(cache)
    np.testing.assert_array_equal(
        cached.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"]
    )
    assert len(cache) == len(X)
    assert cache.misses == len(X) + 1  # + the first fit's first image


def test_pickles_keep_the_settings_not_the_vectors(images):
    cache = FeatureCache(max_entries=100)
    extractor = make_extractor(cache).fit(images)
    extractor.transform(images)
    empty = make_extractor(FeatureCache(max_entries=100)).fit(images[:1])
    assert len(pickle.dumps(extractor)) < len(pickle.dumps(empty)) + 500
    restored = pickle.loads(pickle.dumps(extractor))
    assert restored._cache is cache  # the live cache of this process
    hits = cache.hits
    restored.transform(images)
    assert cache.hits - hits == len(images)


def test_a_cache_unpickled_elsewhere_starts_empty():
    cache = FeatureCache(max_bytes=10_000)
    state = pickle.dumps(cache)
    token = cache._token
    del cache
    import gc

    gc.collect()
    other = pickle.loads(state)  # as in a worker process: no live cache
    assert len(other) == 0 and other.max_bytes == 10_000
    assert other._token == token
    assert pickle.loads(state) is other


# -- bounds ------------------------------------------------------------------
def test_memory_cache_evicts_the_least_recently_used(images):
    cache = FeatureCache(max_entries=3)
    extractor = make_extractor(cache).fit(images[:1])  # caches image 0
    extractor.transform(images[1:3])  # 0, 1, 2
    extractor.transform(images[:1])  # 0 is now the most recent
    extractor.transform(images[3:4])  # evicts 1
    assert len(cache) == 3
    hits = cache.hits
    extractor.transform(images[[0, 2, 3]])
    assert cache.hits - hits == 3
    extractor.transform(images[1:2])
    assert cache.hits - hits == 3


def test_memory_cache_respects_max_bytes(images):
    extractor = make_extractor(FeatureCache()).fit(images)
    extractor.transform(images[:1])
    one = extractor._cache.nbytes
    cache = FeatureCache(max_bytes=2 * one + 1)
    extractor = make_extractor(cache).fit(images)
    extractor.transform(images)
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes


def test_disk_cache_evicts_the_oldest_files(images, tmp_path):
    cache = FeatureCache(tmp_path, max_entries=4)
    extractor = make_extractor(cache).fit(images)
    extractor.transform(images)
    assert len(cache) <= 4
    assert len(FeatureCache(tmp_path)) == len(cache)


# -- disk: instances, processes, damage --------------------------------------
def test_disk_cache_is_shared_by_instances(images, tmp_path):
    first = make_extractor(str(tmp_path)).fit(images)
    features = first.transform(images)
    reader = FeatureCache(tmp_path)
    second = make_extractor(reader).fit(images)
    np.testing.assert_array_equal(second.transform(images), features)
    assert reader.misses == 0 and reader.hits == 1 + len(images)
    (key_file,) = tmp_path.glob("*/key.json")
    assert '"pooling": "avg"' in key_file.read_text()


def _extract_in_worker(folder, images):
    extractor = make_extractor(folder).fit(images)
    return extractor.transform(images)


def test_disk_cache_is_shared_by_processes(images, tmp_path):
    from joblib import Parallel, delayed

    halves = [images[:3], images[2:]]  # image 2 is written by both
    Parallel(n_jobs=2, backend="loky")(
        delayed(_extract_in_worker)(str(tmp_path), part) for part in halves
    )
    reader = FeatureCache(tmp_path)
    features = make_extractor(reader).fit(images).transform(images)
    assert reader.misses == 0
    expected = make_extractor(None).fit(images).transform(images)
    assert_allclose_float32(features, expected)
    assert not list(tmp_path.glob("*/*/.*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "empty", "garbage"])
def test_a_damaged_file_is_recomputed(damage, images, tmp_path):
    extractor = make_extractor(str(tmp_path)).fit(images)
    features = extractor.transform(images)
    key = as_image_sequence(images).key(1)
    path = tmp_path / extractor._cache_key / key[:2] / f"{key}.f32"
    data = path.read_bytes()
    path.write_bytes(
        {
            "truncate": data[:-3],
            "flip a byte": data[:-1] + bytes([data[-1] ^ 0xFF]),
            "empty": b"",
            "garbage": b"not a feature vector at all",
        }[damage]
    )
    reader = FeatureCache(tmp_path)
    again = make_extractor(reader).fit(images).transform(images)
    assert reader.misses == 1
    # Recomputed alone rather than in a batch of 5: equal up to the rounding
    # that batch composition causes, without a cache too.
    assert_allclose_float32(again, features)
    np.testing.assert_array_equal(np.delete(again, 1, 0), np.delete(features, 1, 0))
    assert len(path.read_bytes()) == len(data)  # written again, whole
    np.testing.assert_array_equal(
        reader.get_many(extractor._cache_key, [key])[key], again[1]
    )


def test_leftover_temporary_files_are_ignored(images, tmp_path):
    features = make_extractor(str(tmp_path)).fit(images).transform(images)
    path = next(tmp_path.glob("*/*/*.f32"))
    (path.parent / f".{path.name}.dead.tmp").write_bytes(b"partial")
    reader = FeatureCache(tmp_path)
    np.testing.assert_array_equal(
        make_extractor(reader).fit(images).transform(images), features
    )
    assert reader.misses == 0 and len(reader) == len(images)


# -- unreadable images -------------------------------------------------------
def test_nan_rows_of_unreadable_images_are_not_cached(cache, images, tmp_path):
    paths = save_images(tmp_path, images)
    with open(paths[1], "wb") as f:
        f.write(b"not a png")
    extractor = make_extractor(cache, on_error="warn").fit(paths)
    for _ in range(2):
        with pytest.warns(
            UserWarning,
            match=r"1 of 5 images could not be read.*"
            r"X\[1\]",
        ):
            features = extractor.transform(paths)
        assert np.isnan(features[1]).all()
        assert np.isfinite(np.delete(features, 1, 0)).all()
        assert len(cache) == len(paths) - 1
    Image.fromarray(images[1]).save(paths[1])  # repaired: computed, then cached
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(extractor.transform(paths)).all()
    assert len(cache) == len(paths)


# -- parameters --------------------------------------------------------------
@pytest.mark.parametrize(
    "cache, error, match",
    [
        (
            42,
            TypeError,
            r"PretrainedFeatureExtractor: cache must be None, 'memory', a "
            r"folder path \(str or pathlib.Path\) or a "
            r"sktransfer.FeatureCache, got an object of type int.",
        ),
        ("__file__", ValueError, r"cache=.* is a file; pass a folder"),
    ],
)
def test_invalid_cache_is_refused_at_fit(cache, error, match, images):
    if cache == "__file__":
        cache = __file__
    extractor = make_extractor(cache)
    with pytest.raises(error, match=match):
        extractor.fit(images)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_bytes": 0}, r"max_bytes must be a positive int or None, got 0"),
        ({"max_entries": 2.5}, r"max_entries must be a positive int or None, got 2.5"),
        ({"location": 3}, r"location must be None \(memory\) or a folder path"),
    ],
)
def test_invalid_feature_cache(kwargs, match):
    error = TypeError if "location" in kwargs else ValueError
    with pytest.raises(error, match=match):
        FeatureCache(**kwargs)


def test_constructing_with_a_cache_does_no_io(tmp_path):
    folder = tmp_path / "not yet"
    PretrainedFeatureExtractor(cache=str(folder))
    FeatureCache(folder)
    assert not folder.exists()


def test_repr_and_clear(images, tmp_path):
    cache = FeatureCache(tmp_path, max_bytes=10**6)
    assert repr(cache) == f"FeatureCache({str(tmp_path)!r}, max_bytes=1000000)"
    make_extractor(cache).fit(images).transform(images)
    assert len(cache) == len(images) and cache.nbytes > 0
    cache.clear()
    assert len(cache) == 0 and bool(cache)
    assert os.path.isdir(tmp_path)
