"""Running sktransfer on Dask and Ray: backends, shared caches, GPU placement.

Nothing here starts a cluster or imports Dask or Ray at import time. The
helpers are small and run in the workers:

- :func:`require_backend` imports ``dask.distributed`` or ``ray`` or says
  which ``pip install "sktransfer[...]"`` provides it;
- :func:`check_cache_folder` checks, in a worker, that a disk cache folder is
  there and writable (on a cluster it must be on storage every worker sees);
- :func:`device_for_rank` and :func:`gpu_worker_env` put each worker on its
  own GPU;
- :func:`extract_to_parquet` writes the features of many image files to
  Parquet, batch by batch, locally or on Dask or Ray.
"""

from __future__ import annotations

import importlib
import os
import socket
import uuid
from pathlib import Path

from ._batch_extract import extract_to_parquet

__all__ = [
    "check_cache_folder",
    "device_for_rank",
    "extract_to_parquet",
    "gpu_worker_env",
    "local_gpu_cluster",
    "require_backend",
    "worker_cache_stats",
]

_BACKENDS = {
    "dask": ("dask.distributed", "dask"),
    "ray": ("ray", "ray"),
    "ray_data": ("ray.data", "ray"),
    "parquet": ("pyarrow.parquet", "parquet"),
}


def require_backend(name):
    """Import an optional engine, or raise an ImportError saying how to install it.

    Parameters
    ----------
    name : {"dask", "ray", "ray_data", "parquet"}
        The engine: ``dask.distributed``, ``ray``, ``ray.data`` or
        ``pyarrow.parquet``.

    Returns
    -------
    module
        The imported module.

    Examples
    --------
    >>> from sktransfer.distributed import require_backend
    >>> require_backend("parquet").__name__
    'pyarrow.parquet'
    """
    if name not in _BACKENDS:
        raise ValueError(
            f"require_backend: name must be one of {sorted(_BACKENDS)}, got {name!r}."
        )
    module, extra = _BACKENDS[name]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is needed for this and is not installed ({exc}); install "
            f'it with: pip install "sktransfer[{extra}]"'
        ) from exc


def check_cache_folder(folder):
    """Check, in the process that runs it, that a disk cache folder is usable.

    Run it on every worker before a search or an extraction that shares a
    :class:`~sktransfer.FeatureCache` folder (``client.run(check_cache_folder,
    folder)`` on Dask): on a cluster the folder must be on storage every
    worker sees, and a worker that cannot see it would otherwise silently
    fill a private folder of its own.

    Parameters
    ----------
    folder : str or path
        The cache folder. It must exist (create it once, on the shared
        storage) and be writable.

    Returns
    -------
    info : dict
        ``{"folder", "host", "pid"}`` of the process that checked it.

    Raises
    ------
    ValueError
        If the folder does not exist, is not a folder, or cannot be written,
        naming the folder and the host.

    Examples
    --------
    >>> import tempfile
    >>> from sktransfer.distributed import check_cache_folder
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sorted(check_cache_folder(folder))
    ['folder', 'host', 'pid']
    """
    path = Path(folder).absolute()
    where = f"on host {socket.gethostname()!r} (process {os.getpid()})"
    advice = (
        "every worker must see the same cache folder: put it on a shared "
        "file system and create it before starting the workers"
    )
    if not path.exists():
        raise ValueError(
            f"cache folder {str(path)!r} does not exist {where}; {advice}."
        )
    if not path.is_dir():
        raise ValueError(f"cache folder {str(path)!r} is not a folder {where}.")
    probe = path / f".sktransfer-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(
            f"cache folder {str(path)!r} is not writable {where} ({exc}); {advice}."
        ) from exc
    return {"folder": str(path), "host": socket.gethostname(), "pid": os.getpid()}


def device_for_rank(rank, n_gpus):
    """The device of the worker numbered ``rank``: one GPU each, round robin.

    Parameters
    ----------
    rank : int
        The worker's number, from 0 (on Dask the worker's ``name`` in a
        ``LocalCluster``, on a Ray actor pool the actor's index).
    n_gpus : int
        GPUs visible to the worker's process; 0 gives ``"cpu"``.

    Returns
    -------
    device : str
        ``"cuda:{rank % n_gpus}"``, or ``"cpu"`` without GPUs.

    Examples
    --------
    >>> from sktransfer.distributed import device_for_rank
    >>> [device_for_rank(r, 2) for r in range(4)]
    ['cuda:0', 'cuda:1', 'cuda:0', 'cuda:1']
    >>> device_for_rank(3, 0)
    'cpu'
    """
    rank, n_gpus = _check_count("rank", rank), _check_count("n_gpus", n_gpus)
    return "cpu" if n_gpus == 0 else f"cuda:{rank % n_gpus}"


def gpu_worker_env(rank, n_gpus):
    """Environment variables that show the worker numbered ``rank`` one GPU.

    Give them to the worker process when it starts (Dask: a ``SpecCluster``
    with one ``Nanny`` spec per worker and ``options={"env": ...}``); in the
    worker that GPU is ``cuda:0`` and ``device="auto"`` finds it. Ray does
    this itself for tasks and actors asking for ``num_gpus=1``.

    Parameters
    ----------
    rank : int
        The worker's number, from 0.
    n_gpus : int
        GPUs on the machine (``torch.cuda.device_count()``); 0 hides them all.

    Returns
    -------
    env : dict
        ``{"CUDA_VISIBLE_DEVICES": ...}``.

    Examples
    --------
    >>> from sktransfer.distributed import gpu_worker_env
    >>> [gpu_worker_env(r, 2)["CUDA_VISIBLE_DEVICES"] for r in range(3)]
    ['0', '1', '0']
    >>> gpu_worker_env(0, 0)
    {'CUDA_VISIBLE_DEVICES': ''}
    """
    device = device_for_rank(rank, n_gpus)
    return {"CUDA_VISIBLE_DEVICES": "" if device == "cpu" else device.split(":")[1]}


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
    return value


def local_gpu_cluster(n_workers, n_gpus=None, **scheduler_options):
    """A Dask cluster of worker processes on this machine, one GPU each.

    Worker ``i`` starts with :func:`gpu_worker_env` ``(i, n_gpus)``: it sees
    only GPU ``i mod n_gpus`` (as ``cuda:0``), so estimators with
    ``device="auto"`` in a ``joblib.parallel_backend("dask")`` search spread
    over the GPUs. Each worker has one thread. Without GPUs the workers are
    plain CPU workers (and see no GPU).

    Parameters
    ----------
    n_workers : int
        Worker processes (>= 1).
    n_gpus : int or None, default=None
        GPUs to spread them over; None: ``torch.cuda.device_count()``.
    **scheduler_options
        Passed to ``distributed.Scheduler`` (default ``dashboard_address=":0"``).

    Returns
    -------
    cluster : distributed.SpecCluster
        Use it as a context manager, with ``distributed.Client(cluster)``.

    Examples
    --------
    >>> from sktransfer.distributed import local_gpu_cluster
    >>> def start():  # doctest: +SKIP
    ...     from dask.distributed import Client
    ...     with local_gpu_cluster(2) as cluster, Client(cluster) as client:
    ...         return client.run(os.getenv, "CUDA_VISIBLE_DEVICES")
    """
    distributed = require_backend("dask")
    if n_gpus is None:
        import torch

        n_gpus = torch.cuda.device_count()
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be an integer >= 1, got {n_workers!r}.")
    workers = {
        i: {
            "cls": distributed.Nanny,
            "options": {"nthreads": 1, "env": gpu_worker_env(i, n_gpus)},
        }
        for i in range(n_workers)
    }
    scheduler = {
        "cls": distributed.Scheduler,
        "options": {"dashboard_address": ":0", **scheduler_options},
    }
    return distributed.SpecCluster(workers=workers, scheduler=scheduler)


_PINNED_CACHES = {}  # folder -> FeatureCache kept alive in this process


def worker_cache_stats(folder):
    """Hits and misses of this process's disk cache on ``folder``.

    The first call (run it on every worker before the work:
    ``client.run(worker_cache_stats, folder)``) keeps the process's
    :class:`~sktransfer.FeatureCache` for that folder alive, so that every
    extractor there with ``cache=folder`` counts on it; later calls read the
    counts. It checks the folder first (:func:`check_cache_folder`).

    Parameters
    ----------
    folder : str or path
        The cache folder, as given to the extractors' ``cache``.

    Returns
    -------
    stats : dict
        ``{"hits", "misses", "pid"}``.

    Examples
    --------
    >>> import tempfile
    >>> from sktransfer.distributed import worker_cache_stats
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     stats = worker_cache_stats(folder)
    >>> stats["hits"], stats["misses"]
    (0, 0)
    """
    from ._cache import resolve_cache

    check_cache_folder(folder)
    key = str(Path(folder).absolute())
    if key not in _PINNED_CACHES:
        _PINNED_CACHES[key] = resolve_cache(key, "worker_cache_stats")
    cache = _PINNED_CACHES[key]
    return {"hits": cache.hits, "misses": cache.misses, "pid": os.getpid()}
