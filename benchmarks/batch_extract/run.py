"""Batch extraction to Parquet: peak memory and throughput vs batch size.

Each measurement runs in a fresh process (peak RSS = ``ru_maxrss`` of that
process, and for Dask of its worker processes): the plain in-memory
``transform`` of every image (the reference), then ``extract_to_parquet``
locally and on a local Dask cluster (2 workers, 1 thread) at several batch
sizes. Throughput is images/s; ratios are to the plain transform measured in
the same run. Writes results.json and results.md next to this file.

    python benchmarks/batch_extract/run.py            # 3,000 images
    python benchmarks/batch_extract/run.py --smoke    # seconds
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PRE = {"resize_size": 64, "crop_size": 64}


def _extractor():
    from sktransfer import PretrainedFeatureExtractor

    return PretrainedFeatureExtractor(
        "efficientnet_lite0", preprocessing=PRE, device="cpu", n_jobs=1
    )


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode, folder, batch_size):
    """Runs in a child process; prints one JSON line."""
    import torch

    torch.set_num_threads(1)
    from sktransfer.distributed import extract_to_parquet

    paths = sorted(str(p) for p in Path(folder).glob("*.png"))
    base = _peak_mib()
    out = Path(tempfile.mkdtemp()) / "features.parquet"
    start = time.perf_counter()
    workers = None
    if mode == "transform":
        ext = _extractor().fit(paths[:1])  # timed too, as extract_to_parquet fits
        ext.set_params(batch_size=batch_size).transform(paths)
    elif mode == "local":
        extract_to_parquet(paths, out, _extractor(), batch_size=batch_size)
    else:
        from dask.distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: __import__("torch").set_num_threads(1))
            start = time.perf_counter()
            extract_to_parquet(
                paths, out, _extractor(), batch_size=batch_size, engine="dask"
            )
            seconds = time.perf_counter() - start
            workers = list(client.run(_peak_mib).values())
    seconds = seconds if mode == "dask" else time.perf_counter() - start
    print(
        json.dumps(
            {
                "mode": mode,
                "batch_size": batch_size,
                "n_images": len(paths),
                "seconds": seconds,
                "images_per_s": len(paths) / seconds,
                "peak_rss_mib": _peak_mib(),
                "rss_before_mib": base,
                "worker_peak_rss_mib": workers,
            }
        )
    )


def _images(folder, n):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            folder / f"{i:05d}.png"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--n-images", type=int, default=3000)
    args = parser.parse_args()
    n = 64 if args.smoke else args.n_images
    sizes = (16,) if args.smoke else (32, 128, 512)
    folder = Path(tempfile.mkdtemp(prefix="batch-extract-"))
    _images(folder, n)
    runs = [("transform", 32)] + [(m, b) for m in ("local", "dask") for b in sizes]
    results = []
    for mode, batch in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(folder), str(batch)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    ref = results[0]["images_per_s"]
    for r in results:
        r["throughput_ratio_to_transform"] = r["images_per_s"] / ref
    import torch

    import sktransfer

    report = {
        "hardware": f"{platform.machine()}, {platform.processor() or '?'}, "
        f"2 shared CPU cores, torch threads 1",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sktransfer": sktransfer.__version__,
        },
        "backbone": "efficientnet_lite0 at 64 px, 64x64 PNG inputs",
        "results": results,
    }
    if args.smoke:
        return
    (HERE / "results.json").write_text(json.dumps(report, indent=1))
    lines = [
        "# Batch extraction to Parquet",
        "",
        f"{n} PNG images, {report['backbone']}; {report['hardware']}.",
        "Peak RSS is the process's ru_maxrss (Dask: the client process and "
        "each worker); throughput ratio to the plain in-memory transform "
        "measured in the same run.",
        "",
        "| mode | batch | images/s | ratio | peak RSS MiB | worker peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        w = r["worker_peak_rss_mib"]
        lines.append(
            f"| {r['mode']} | {r['batch_size']} | {r['images_per_s']:.0f} | "
            f"{r['throughput_ratio_to_transform']:.2f} | {r['peak_rss_mib']:.0f} | "
            f"{'-' if w is None else ', '.join(f'{x:.0f}' for x in w)} |"
        )
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
