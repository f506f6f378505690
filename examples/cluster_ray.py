"""Grid search with Ray's joblib backend, then Ray Data extraction to Parquet.

Local Ray with 2 CPUs stands in for a cluster (``ray.init(address="auto")``
joins a real one). The search shares a disk feature cache with the Ray
workers: the first search fills it, the second only reads it (counted by
the files it touched). Then ``extract_to_parquet(engine="ray")`` writes the
features of the images with a ``map_batches`` actor pool.

    python examples/cluster_ray.py
"""

import os
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import ray
from cluster_common import image_files, search
from joblib import parallel_backend
from ray.util.joblib import register_ray

from sktransfer import PretrainedFeatureExtractor
from sktransfer.distributed import check_cache_folder, extract_to_parquet


def main():
    work = tempfile.mkdtemp(prefix="sktransfer-ray-")
    paths, y = image_files(os.path.join(work, "images"))
    cache = os.path.join(work, "cache")
    os.mkdir(cache)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_ray()
    ray.get(ray.remote(check_cache_folder).remote(cache))  # a worker sees it
    for label, Cs in (("first", [0.1, 1.0]), ("second", [0.01, 0.1, 1.0, 10.0])):
        files = list(Path(cache).glob("*/*/*.f32"))
        for f in files:
            os.utime(f, (0, 0))  # a hit touches its file
        start = time.perf_counter()
        with parallel_backend("ray", n_jobs=2):
            result = search(cache, Cs).fit(paths, y)
        seconds = time.perf_counter() - start
        touched = sum(f.stat().st_mtime > 0 for f in files)
        n_files = len(list(Path(cache).glob("*/*/*.f32")))
        print(
            f"{label} search ({len(Cs)} C x 3 folds, {len(paths)} images): "
            f"{seconds:.1f} s, {n_files} cached vectors ({n_files - len(files)} "
            f"new), {touched} read from the cache; best {result.best_params_}"
        )
    out = os.path.join(work, "features.parquet")
    extractor = PretrainedFeatureExtractor(
        "efficientnet_lite0", preprocessing={"resize_size": 64, "crop_size": 64}
    )
    start = time.perf_counter()
    n = extract_to_parquet(paths, out, extractor, batch_size=32, engine="ray")
    print(
        f"Ray Data: {n} rows, table {pq.read_table(out).shape}, "
        f"{time.perf_counter() - start:.1f} s"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
