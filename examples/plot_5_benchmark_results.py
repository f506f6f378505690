"""
Benchmark results
=================

The committed results of ``benchmarks/transfer_vs_classical.py`` (JSON under
``benchmarks/results/``), plotted without training anything: accuracy of
classical baselines, the linear probe and fine-tuning against the number of
labelled images per class, mean and spread over seeds.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

# The gallery runs in examples/; interactively, run it from the repository.
HERE = Path.cwd()
ROOT = next(p for p in (HERE, *HERE.parents) if (p / "benchmarks" / "results").is_dir())
RESULTS = ROOT / "benchmarks" / "results"

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, dataset in zip(axes, ["digits", "fashion_mnist"]):
    report = json.loads((RESULTS / dataset / "results.json").read_text())
    rows = pd.DataFrame(report["results"])
    stats = rows.groupby(["method", "labels_per_class"])["accuracy"].agg(
        ["mean", "std"]
    )
    for method, part in stats.groupby(level="method"):
        part = part.droplevel("method")
        ax.errorbar(
            part.index,
            part["mean"],
            yerr=part["std"],
            marker="o",
            capsize=3,
            label=method,
        )
    config = report["config"]
    ax.set(
        xscale="log",
        xlabel="labelled images per class",
        ylabel="test accuracy",
        title=f"{dataset} ({config['backbone']}, {config['image_size']} px)",
    )
    ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# The environment the results were measured in.
print(json.dumps(report["environment"], indent=1))
