"""Grid searches and batch extraction on local Dask and Ray clusters.

One Dask cluster (2 worker processes, 1 thread each) and one local Ray
(num_cpus=2) serve the whole module: starting them is most of the cost.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from joblib import parallel_backend
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline

from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor
from sktransfer._testing import (
    TinyConvNet,
    assert_allclose_float32,
    make_shapes_dataset,
    save_images,
)
from sktransfer.distributed import (
    check_cache_folder,
    device_for_rank,
    extract_to_parquet,
    gpu_worker_env,
    local_gpu_cluster,
    require_backend,
    worker_cache_stats,
)

distributed = pytest.importorskip("dask.distributed")
pq = pytest.importorskip("pyarrow.parquet")

PRE16 = {"resize_size": 16, "crop_size": 16}


def _tiny(seed=0):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyConvNet(width=4)


def _extractor(cache=None):
    return PretrainedFeatureExtractor(
        _tiny(), preprocessing=PRE16, device="cpu", n_jobs=1, cache=cache
    )


@pytest.fixture(scope="module")
def client():
    # The placement helper is the cluster: worker i sees GPU i mod 2 (here
    # there are none; the environment is what is tested).
    with (
        local_gpu_cluster(2, n_gpus=2) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_ray()
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def shapes_files(tmp_path_factory):
    X, y = make_shapes_dataset(n_per_class=12, size=16)
    folder = tmp_path_factory.mktemp("shapes")
    paths = []
    for i, image in enumerate(X):
        Image.fromarray(image).save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    return np.asarray(paths, dtype=object), y


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """2,000 small PNG files (8 x 8 pixels)."""
    folder = tmp_path_factory.mktemp("many")
    pixels = np.random.default_rng(0).integers(0, 256, (2000, 8, 8, 3), dtype=np.uint8)
    paths = []
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
        paths.append(str(folder / f"{i:04d}.png"))
    return paths


# -- placement ---------------------------------------------------------------------
def test_device_for_rank_round_robin_and_errors():
    assert [device_for_rank(r, 3) for r in range(5)] == [
        "cuda:0",
        "cuda:1",
        "cuda:2",
        "cuda:0",
        "cuda:1",
    ]
    assert device_for_rank(7, 0) == "cpu"
    assert gpu_worker_env(3, 2) == {"CUDA_VISIBLE_DEVICES": "1"}
    with pytest.raises(ValueError, match="rank must be an integer >= 0, got -1"):
        device_for_rank(-1, 2)
    with pytest.raises(ValueError, match="n_gpus must be an integer >= 0"):
        gpu_worker_env(0, 1.5)


def test_each_dask_worker_sees_its_own_gpu(client):
    seen = client.run(os.getenv, "CUDA_VISIBLE_DEVICES")
    assert sorted(seen.values()) == ["0", "1"]


# -- grid search -------------------------------------------------------------------
def _search(paths, y, cache, Cs):
    pipe = make_pipeline(_extractor(cache), LogisticRegression(max_iter=200))
    search = GridSearchCV(pipe, {"logisticregression__C": Cs}, cv=3, n_jobs=2)
    return search.fit(paths, y)


def _n_files(folder):
    return len(list(Path(folder).glob("*/*/*.f32")))


@pytest.mark.slow  # worker processes start and import torch
def test_dask_grid_search_cache_filled_once_then_hit_by_new_workers(
    client, shapes_files, tmp_path
):
    paths, y = shapes_files
    folder = str(tmp_path / "cache")
    os.mkdir(folder)
    client.run(worker_cache_stats, folder)
    with parallel_backend("dask"):
        first = _search(paths, y, folder, [0.1, 1.0])
    filled = client.run(worker_cache_stats, folder)
    assert len(filled) == 2 and sum(s["misses"] for s in filled.values()) > 0
    assert _n_files(folder) == len(paths)  # each image computed and stored once

    client.restart()  # new worker processes, empty memory: only the disk is shared
    client.run(worker_cache_stats, folder)
    with parallel_backend("dask"):
        second = _search(paths, y, folder, [0.1, 1.0, 10.0])
    after = client.run(worker_cache_stats, folder)
    assert {s["pid"] for s in after.values()}.isdisjoint(
        s["pid"] for s in filled.values()
    )
    assert sum(s["misses"] for s in after.values()) == 0
    # 3 C x 3 folds, each fit + score reads its training and test images
    assert sum(s["hits"] for s in after.values()) >= 9 * len(paths)
    assert _n_files(folder) == len(paths)
    assert second.cv_results_["mean_test_score"][:2] == pytest.approx(
        first.cv_results_["mean_test_score"]
    )


def test_dask_cross_validate_fine_tuner(client):
    X, y = make_shapes_dataset(n_per_class=10, size=16)
    clf = FineTunedClassifier(
        _tiny(),
        preprocessing=PRE16,
        max_epochs=1,
        batch_size=8,
        device="cpu",
        random_state=0,
    )
    with parallel_backend("dask"):
        result = cross_validate(clf, X, y, cv=2, n_jobs=2)
    assert result["test_score"].shape == (2,)
    assert np.all((result["test_score"] >= 0) & (result["test_score"] <= 1))


@pytest.mark.slow  # worker processes start and import torch
def test_ray_grid_search_reads_the_shared_cache(ray_local, shapes_files, tmp_path):
    paths, y = shapes_files
    folder = str(tmp_path / "cache")
    os.mkdir(folder)
    _search(paths, y, folder, [1.0])  # fills the cache in this process
    files = list(Path(folder).glob("*/*/*.f32"))
    for f in files:
        os.utime(f, (0, 0))  # a hit touches its file: count the touched ones
    with parallel_backend("ray", n_jobs=2):
        search = _search(paths, y, folder, [0.1, 1.0])
    touched = [f for f in files if f.stat().st_mtime > 0]
    assert len(touched) == len(paths) and _n_files(folder) == len(paths)
    assert search.best_params_["logisticregression__C"] in (0.1, 1.0)


@pytest.mark.slow  # worker processes start and import torch
def test_ray_cross_validate_fine_tuner(ray_local):
    X, y = make_shapes_dataset(n_per_class=10, size=16)
    clf = FineTunedClassifier(
        _tiny(), preprocessing=PRE16, max_epochs=1, batch_size=8, device="cpu"
    )
    with parallel_backend("ray", n_jobs=2):
        result = cross_validate(clf, X, y, cv=2)
    assert result["test_score"].shape == (2,)


# -- batch extraction ------------------------------------------------------------
def _read(output, paths):
    table = pq.read_table(output).to_pandas().set_index("path")
    assert sorted(table.index) == sorted(paths)
    return table.loc[paths].to_numpy()


@pytest.fixture(scope="module")
def reference(many_files):
    return _extractor().fit(many_files[:1]).transform(many_files)


def test_extract_local_fitted_and_unfitted(many_files, reference, tmp_path):
    n = extract_to_parquet(
        many_files, tmp_path / "a.parquet", _extractor(), batch_size=300
    )
    assert n == len(many_files)
    assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups == 7  # one per batch
    assert_allclose_float32(_read(tmp_path / "a.parquet", many_files), reference)
    fitted = _extractor().fit(many_files[:1])
    extract_to_parquet(many_files[:10], tmp_path / "b.parquet", fitted)
    assert_allclose_float32(
        _read(tmp_path / "b.parquet", many_files[:10]), reference[:10]
    )


def test_extract_dask_one_file_per_batch(client, many_files, reference, tmp_path):
    out = tmp_path / "features.parquet"
    n = extract_to_parquet(
        many_files, out, _extractor(), batch_size=250, engine="dask", client=client
    )
    assert n == len(many_files) and len(list(out.glob("*.parquet"))) == 8
    assert_allclose_float32(_read(out, many_files), reference)
    with pytest.raises(ValueError, match="exists and is not an empty folder"):
        extract_to_parquet(many_files, out, _extractor(), engine="dask", client=client)


@pytest.mark.slow  # worker processes start and import torch
def test_extract_ray_data_actor_pool(ray_local, many_files, reference, tmp_path):
    out = tmp_path / "features.parquet"
    n = extract_to_parquet(
        many_files, out, _extractor(), batch_size=500, engine="ray", n_workers=2
    )
    assert n == len(many_files)
    assert_allclose_float32(_read(out, many_files), reference)


@pytest.mark.slow  # the command starts its own cluster (dask) or reuses Ray
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_cli_extract_on_an_engine(engine, request, tmp_path, capsys):
    from sktransfer.cli import main

    if engine == "ray":
        request.getfixturevalue("ray_local")
    folder = tmp_path / "images"
    pixels = np.random.default_rng(1).integers(0, 256, (6, 20, 24, 3), dtype=np.uint8)
    paths = save_images(folder, pixels)
    out = tmp_path / "features"
    argv = ["extract", str(folder), "-o", str(out), "--engine", engine]
    argv += ["--workers", "2", "--batch-size", "2", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert f"Wrote 6 rows to {out}" in capsys.readouterr().out
    assert len(list(out.glob("*.parquet"))) >= 2  # written by the workers
    # The command's default backbone (the offline ImageNet Lite0) in this process.
    expected = PretrainedFeatureExtractor("efficientnet_lite0", device="cpu")
    assert_allclose_float32(_read(out, paths), expected.fit(paths).transform(paths))


# -- errors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, module, extra",
    [("dask", "dask.distributed", "dask"), ("ray", "ray", "ray")],
)
def test_missing_backend_says_what_to_install(monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(ImportError, match=rf'pip install "sktransfer\[{extra}\]"'):
        require_backend(name)


def test_missing_backend_from_extract(monkeypatch, many_files, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"sktransfer\[ray\]"):
        extract_to_parquet(many_files[:2], tmp_path / "o", _extractor(), engine="ray")


def test_worker_without_the_cache_folder_names_it(client, tmp_path):
    missing = str(tmp_path / "not_shared")
    with pytest.raises(
        ValueError, match=rf"cache folder '{missing}' does not exist on host"
    ):
        client.run(check_cache_folder, missing)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        check_cache_folder(tmp_path / "file")


def test_not_writable_cache_folder_names_it(tmp_path, monkeypatch):
    folder = tmp_path / "read_only"
    folder.mkdir()

    def refuse(self, data):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(ValueError, match=rf"cache folder '{folder}' is not writable"):
        check_cache_folder(folder)


def test_bad_arguments(many_files, tmp_path):
    with pytest.raises(ValueError, match="engine must be one of local, dask, ray"):
        extract_to_parquet(many_files, tmp_path / "o", _extractor(), engine="spark")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        extract_to_parquet(many_files, tmp_path / "o", _extractor(), batch_size=0)
    with pytest.raises(TypeError, match="must be a PretrainedFeatureExtractor"):
        extract_to_parquet(many_files, tmp_path / "o", LogisticRegression())


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the error on a machine without GPU"
)
def test_gpu_asked_for_and_missing(many_files, tmp_path):
    extractor = PretrainedFeatureExtractor(_tiny(), preprocessing=PRE16, device="cuda")
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        extract_to_parquet(many_files[:2], tmp_path / "o.parquet", extractor)
