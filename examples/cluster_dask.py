"""Grid search on a Dask cluster with a disk feature cache shared by the workers.

A local cluster of 2 worker processes (1 thread each) stands in for a real
one: replace ``local_gpu_cluster(2)`` by ``Client("scheduler:8786")`` and the
cache folder by one on a file system every worker sees. The first search
computes each image's features once; the second cluster's workers are new
processes and the second search, over more C values, only reads the cache.

    python examples/cluster_dask.py
"""

import os
import tempfile
import time

from cluster_common import image_files, search
from dask.distributed import Client
from joblib import parallel_backend

from sktransfer.distributed import local_gpu_cluster, worker_cache_stats


def main():
    work = tempfile.mkdtemp(prefix="sktransfer-dask-")
    paths, y = image_files(os.path.join(work, "images"))
    cache = os.path.join(work, "cache")
    os.mkdir(cache)
    for label, Cs in (("first", [0.1, 1.0]), ("second", [0.01, 0.1, 1.0, 10.0])):
        # A new cluster each time: the second search runs in new processes.
        with local_gpu_cluster(2) as cluster, Client(cluster) as client:
            client.run(worker_cache_stats, cache)  # checks the folder, starts counting
            start = time.perf_counter()
            with parallel_backend("dask"):
                result = search(cache, Cs).fit(paths, y)
            seconds = time.perf_counter() - start
            stats = client.run(worker_cache_stats, cache).values()
            hits, misses = (
                sum(s["hits"] for s in stats),
                sum(s["misses"] for s in stats),
            )
            print(
                f"{label} search ({len(Cs)} C x 3 folds, {len(paths)} images): "
                f"{seconds:.1f} s, cache hits {hits}, misses {misses}, best "
                f"{result.best_params_}, score {result.best_score_:.3f}"
            )


if __name__ == "__main__":
    main()
