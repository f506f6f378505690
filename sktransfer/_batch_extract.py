"""Features of many image files -> Parquet, batch by batch.

Memory is bounded by the batch: only the paths of the whole collection are
held at once; each batch of images is decoded, run through the backbone,
written as one Parquet row group (or one file) and dropped. Three engines run
the same per-batch function: this process, Dask (one fitted extractor per
worker process, over chunks of paths) and Ray Data (``map_batches`` over an
actor pool, one fitted extractor per actor).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
from sklearn.base import clone

from ._inference import progress_bar

ENGINES = ("local", "dask", "ray")
_WORKER_EXTRACTORS = {}  # token -> fitted extractor, one per worker process


def extract_to_parquet(
    paths,
    output,
    extractor,
    *,
    batch_size=256,
    engine="local",
    client=None,
    n_workers=None,
    progress=False,
):
    """Write the features of image files to Parquet, one batch at a time.

    Parameters
    ----------
    paths : sequence of str or path
        The image files.
    output : str or path
        ``engine="local"``: a Parquet file (one row group per batch).
        ``"dask"`` and ``"ray"``: a folder of Parquet files (one per batch
        on Dask, per Ray Data block on Ray), read back whole by
        ``pandas.read_parquet(output)`` or ``pyarrow.parquet.read_table``.
        Rows: a ``path`` column, then one float32 column per feature
        (``extractor.get_feature_names_out()``); unreadable images (with
        ``on_error="warn"``) give NaN rows.
    extractor : PretrainedFeatureExtractor
        Fitted: used as is (pickled to each worker, weights included).
        Not fitted: each worker fits its own copy once, on its first batch
        (``fit`` only loads the backbone), so nothing heavy is shipped.
    batch_size : int, default=256
        Images per batch; memory grows with it, not with ``len(paths)``.
    engine : {"local", "dask", "ray"}, default="local"
        Where the batches run.
    client : dask.distributed.Client or None, default=None
        ``engine="dask"``: the cluster's client (None: the current one).
    n_workers : int or None, default=None
        ``engine="ray"``: actors in the pool (None: Ray's available CPUs).
    progress : bool, default=False
        A progress bar: per batch (local), over the batches' futures
        (``dask.distributed.progress``), Ray Data's own bars (ray).

    Returns
    -------
    n_rows : int
        Rows written.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> import pyarrow.parquet as pq
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.testing import TinyConvNet
    >>> from sktransfer.distributed import extract_to_parquet
    >>> folder = Path(tempfile.mkdtemp())
    >>> paths = []
    >>> for i in range(5):
    ...     Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(folder / f"{i}.png")
    ...     paths.append(str(folder / f"{i}.png"))
    >>> extractor = PretrainedFeatureExtractor(
    ...     TinyConvNet(), preprocessing={"resize_size": 16, "crop_size": 16},
    ...     device="cpu")
    >>> extract_to_parquet(paths, folder / "features.parquet", extractor, batch_size=2)
    5
    >>> pq.read_table(folder / "features.parquet").shape
    (5, 9)
    """
    paths = [os.fspath(p) for p in paths]
    _check_arguments(paths, extractor, batch_size, engine)
    if engine == "local":
        return _extract_local(paths, output, extractor, batch_size, progress)
    if engine == "dask":
        return _extract_dask(paths, output, extractor, batch_size, client, progress)
    return _extract_ray(paths, output, extractor, batch_size, n_workers, progress)


def _check_arguments(paths, extractor, batch_size, engine):
    from ._extractor import PretrainedFeatureExtractor

    if engine not in ENGINES:
        raise ValueError(
            f"extract_to_parquet: engine must be one of {', '.join(ENGINES)}, got {engine!r}."
        )
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            f"extract_to_parquet: batch_size must be an integer >= 1, got {batch_size!r}."
        )
    if not isinstance(extractor, PretrainedFeatureExtractor):
        raise TypeError(
            f"extract_to_parquet: extractor must be a PretrainedFeatureExtractor, "
            f"got {type(extractor).__name__}."
        )
    if not paths:
        raise ValueError("extract_to_parquet: paths is empty; no image to extract.")


def _fitted(extractor, token, first_batch):
    """The worker's fitted extractor: the one given, or a copy fitted once."""
    if hasattr(extractor, "backbone_"):
        return extractor
    if token not in _WORKER_EXTRACTORS:
        _WORKER_EXTRACTORS[token] = clone(extractor).fit(first_batch[:1])
    return _WORKER_EXTRACTORS[token]


def features_table(extractor, paths):
    """A pyarrow Table: ``path`` then the features of ``paths``, float32."""
    import pyarrow as pa

    features = np.asarray(extractor.transform(list(paths)), dtype=np.float32)
    columns = {"path": pa.array(list(paths), type=pa.string())}
    for name, column in zip(extractor.get_feature_names_out(), features.T):
        columns[str(name)] = pa.array(column)
    return pa.table(columns)


def _new_folder(output):
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ValueError(
            f"extract_to_parquet: output {str(output)!r} exists and is not an empty "
            f"folder; Dask and Ray write a folder of Parquet files: pass a new path."
        )
    output.mkdir(parents=True, exist_ok=True)
    return output


def _batches(paths, batch_size):
    return [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]


# -- local ---------------------------------------------------------------------
def _extract_local(paths, output, extractor, batch_size, progress):
    from .distributed import require_backend

    pq = require_backend("parquet")
    output = Path(output)
    token = uuid.uuid4().hex
    writer = None
    n_rows = 0
    try:
        with progress_bar(len(paths), progress, "extract") as bar:
            for batch in _batches(paths, batch_size):
                fitted = _fitted(extractor, token, batch)
                table = features_table(fitted, batch)
                if writer is None:
                    writer = pq.ParquetWriter(output, table.schema)
                writer.write_table(table)
                n_rows += table.num_rows
                if bar is not None:
                    bar.update(len(batch))
    finally:
        if writer is not None:
            writer.close()
        _WORKER_EXTRACTORS.pop(token, None)
    return n_rows


# -- Dask ------------------------------------------------------------------------
def _dask_part(batch, index, output, extractor, token):
    """Runs in a Dask worker: one batch -> ``output/part-<index>.parquet``."""
    import pyarrow.parquet as pq

    if not hasattr(extractor, "backbone_") and extractor.device == "auto":
        extractor = _placed_on_worker_gpu(extractor)
    table = features_table(_fitted(extractor, token, batch), batch)
    pq.write_table(table, Path(output) / f"part-{index:06d}.parquet")
    return table.num_rows


def _placed_on_worker_gpu(extractor):
    """With several GPUs, the Dask worker numbered N uses cuda:N mod #GPUs."""
    import torch

    from .distributed import device_for_rank

    n_gpus = torch.cuda.device_count()
    if n_gpus < 2:
        return extractor
    from dask.distributed import get_worker

    name = get_worker().name
    rank = name if isinstance(name, int) else 0
    return clone(extractor).set_params(device=device_for_rank(rank, n_gpus))


def _extract_dask(paths, output, extractor, batch_size, client, progress):
    from .distributed import require_backend

    require_backend("parquet")
    distributed = require_backend("dask")
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise ValueError(
                "extract_to_parquet: engine='dask' needs a dask.distributed Client; "
                "create one (Client(LocalCluster(...)) or Client('scheduler:8786')) "
                "or pass client=."
            ) from None
    output = _new_folder(output)
    batches = _batches(paths, batch_size)
    token = uuid.uuid4().hex
    shipped = client.scatter(extractor, broadcast=True)
    futures = client.map(
        _dask_part,
        batches,
        range(len(batches)),
        output=str(output),
        extractor=shipped,
        token=token,
        pure=False,
    )
    if progress:
        distributed.progress(futures)
    n_rows = sum(client.gather(futures))
    client.run(_WORKER_EXTRACTORS.pop, token, None)
    return n_rows


# -- Ray Data ------------------------------------------------------------------
class _RayExtractor:
    """A Ray Data actor: fits (or receives) one extractor, maps batches."""

    def __init__(self, extractor):
        self.extractor = extractor
        self.token = uuid.uuid4().hex

    def __call__(self, batch):
        paths = [str(p) for p in batch["path"]]
        return features_table(_fitted(self.extractor, self.token, paths), paths)


def _extract_ray(paths, output, extractor, batch_size, n_workers, progress):
    from .distributed import require_backend

    require_backend("parquet")
    ray = require_backend("ray")
    data = require_backend("ray_data")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    data.DataContext.get_current().enable_progress_bars = bool(progress)
    if n_workers is None:
        n_workers = max(1, int(ray.available_resources().get("CPU", 1)))
    num_gpus = 1 if str(extractor.device).startswith("cuda") else 0
    dataset = data.from_items([{"path": p} for p in paths])
    dataset = dataset.map_batches(
        _RayExtractor,
        fn_constructor_args=(extractor,),
        batch_size=batch_size,
        batch_format="numpy",
        compute=data.ActorPoolStrategy(size=n_workers),
        num_cpus=1,
        num_gpus=num_gpus,
    )
    output = _new_folder(output)
    dataset.write_parquet(str(output))
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in output.glob("*.parquet"))
