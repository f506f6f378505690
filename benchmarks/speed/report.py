"""results.json -> results.md for the speed benchmarks."""

from __future__ import annotations


def _ratio(s, digits=2):
    return (
        f"**{s['median']:.{digits}f}** ({s['min']:.{digits}f}-"
        f"{s['max']:.{digits}f}, n={s['n']})"
    )


def _seconds(s):
    return f"{s['median']:.1f} s ({s['min']:.1f}-{s['max']:.1f}, n={s['n']})"


def markdown(results):
    env = results["environment"]
    v = env["versions"]
    lines = [
        "# Speed benchmarks"
        + (
            " (smoke run: sizes too small to mean anything)" if results["smoke"] else ""
        ),
        "",
        "Written by `benchmarks/speed/run.py`; see README.md for what each "
        "measurement is. Ratios are medians over interleaved repetitions "
        "(min-max and number of runs in brackets), each taken against its "
        "reference timed in the same repetition.",
        "",
        f"Machine: {env['cpu']}, {env['cpu_count']} CPU cores, torch threads "
        f"{env['torch_threads']}, GPU: {env['gpu'] or 'none'}; "
        f"OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}; load average "
        f"{env['load_average_at_start'][0]:.1f} at start, "
        f"{env.get('load_average_at_end', [float('nan')])[0]:.1f} at end "
        f"(a shared machine). Python {env['python']}.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".",
        f"Total: {results['total_seconds']:.0f} s.",
        "",
    ]
    if "rerun" in results:
        r = results["rerun"]
        lines += [
            f"Sections {', '.join(r['sections'])} were rerun later with "
            f"`--only` (sktransfer {r['environment']['versions']['sktransfer']}, "
            f"load average {r['environment']['load_average_at_start'][0]:.1f} at "
            "start); the others are from the run above.",
            "",
        ]
    if "throughput" in results:
        t = results["throughput"]
        lines += [
            "## 1. Extraction throughput from image files",
            "",
            f"{t['rows'][0]['images']} colour photos of {t['photo_size'][0]} x "
            f"{t['photo_size'][1]} px per repetition, batch size "
            f"{t['batch_size']}, float32, CPU. Ratio = images/s of the contender "
            f"/ images/s of the forward pass alone on preprocessed tensors "
            f"(same model, batch size, precision and memory layout).",
            "",
            "| model | files | contender | images/s | ratio to forward pass |",
            "|---|---|---|---|---|",
        ]
        for r in t["rows"]:
            lines.append(
                f"| {r['model']} | {r['format']} | {r['contender']} | "
                f"{r['images_per_second']['median']:.1f} | "
                f"{_ratio(r['ratio_to_forward'])} |"
            )
        lines.append("")
    if "cache_grid" in results:
        c = results["cache_grid"]
        lines += [
            "## 2. Grid search over a head with the feature cache",
            "",
            f"`GridSearchCV(make_pipeline(PretrainedFeatureExtractor("
            f'"efficientnet_lite0", cache=...), LogisticRegression()), '
            f"C={c['C']}, cv={c['folds']})` on {c['data']} ({c['fits']} fits).",
            "",
            "| | seconds |",
            "|---|---|",
            f"| without cache | {_seconds(c['seconds_without_cache'])} |",
            f"| with a cold `FeatureCache()` | {_seconds(c['seconds_with_cache'])} |",
            f"| **speed-up** | **{c['speedup']:.1f}x** |",
            "",
            f"Identical `mean_test_score` with and without the cache: "
            f"{c['identical_mean_test_scores']}. Cache hits / misses in one "
            f"search: {c['cache_hits']} / {c['cache_misses']}.",
            "",
        ]
    if "grid_limit" in results:
        g = results["grid_limit"]
        lines += [
            "## 2b. A cached grid search against its limit",
            "",
            f"`GridSearchCV(make_pipeline(PretrainedFeatureExtractor("
            f'"resnet18", cache=FeatureCache()), StandardScaler(), '
            f"LogisticRegression()), C={g['C']})` on {g['data']}; {g['model']}, "
            f"preprocessing {g['preprocessing']}. The limit, timed in the same "
            "repetition: one extraction of each image (a fresh extractor's fit + "
            "transform, no cache) plus the same search over "
            "`make_pipeline(StandardScaler(), LogisticRegression())` on those "
            "features. Ratio to the limit = limit seconds / seconds, within a "
            "repetition (= speed-up / the limit's speed-up). Goal: >= 0.85."
            + (
                " Each contender ran once untimed before the repetitions."
                if any(r.get("warmup") for r in g["rows"])
                else ""
            ),
            "",
            "| folds | fits | without cache | limit (extraction + heads) | "
            "with cache | speed-up | limit speed-up | **ratio to limit** | "
            "before: network built in every fit |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in g["rows"]:
            t = r["seconds"]
            lines.append(
                f"| {r['folds']} | {r['fits']} | {r['seconds_without_cache']:.1f} s | "
                f"{_seconds(t['limit'])} ({r['extraction_seconds']['median']:.1f} + "
                f"{r['heads_seconds']['median']:.2f}) | {_seconds(t['cached'])} | "
                f"{r['speedup_with_cache']:.1f}x | {r['speedup_at_the_limit']:.1f}x | "
                f"{_ratio(r['ratio_to_limit'])} | "
                f"{_ratio(r['ratio_to_limit_network_built_in_every_fit'])} |"
            )
        lines += [
            "",
            "Identical `mean_test_score` with and without the cache: "
            + ", ".join(
                f"{r['folds']} folds {r['identical_mean_test_scores_cached_uncached']}"
                for r in g["rows"]
            )
            + "; with the cache and at the limit: "
            + ", ".join(
                f"{r['folds']} folds {r['identical_mean_test_scores_cached_limit']}"
                for r in g["rows"]
            )
            + ". Cache hits / misses in one cached search: "
            + ", ".join(
                f"{r['folds']} folds {r['cache_hits_misses'][0]} / "
                f"{r['cache_hits_misses'][1]}"
                for r in g["rows"]
            )
            + ".",
            "",
        ]
    if "linear_probe" in results:
        p = results["linear_probe"]
        lines += [
            "## 3. Linear probe: backbone features once per fit",
            "",
            f'`FineTunedClassifier("efficientnet_lite0", freeze="backbone", '
            f'augment="off", max_epochs={p["epochs"]})` on {p["data"]}; the '
            f"per-epoch path is forced with `train_transform=lambda x: x`.",
            "",
            "| | fit seconds |",
            "|---|---|",
            f"| features once per fit | {_seconds(p['seconds_once_per_fit'])} |",
            f"| features every epoch | {_seconds(p['seconds_every_epoch'])} |",
            f"| **speed-up** | {_ratio(p['speedup'], 1)} |",
            "",
            f"Same predictions: {p['same_predictions']}; largest probability "
            f"difference {p['max_abs_proba_difference']:.1e}.",
            "",
        ]
    if "finetune_epoch" in results:
        f = results["finetune_epoch"]
        rate, ratio = f["images_per_second"], f["ratio_to_best"]
        lines += [
            "## 4. Fine-tuning: training images/s vs hand-written loops",
            "",
            f"EfficientNet-Lite0, full fine-tuning, {f['data']}. The loops use "
            "the same modules and preprocessed tensors (computed once, outside "
            "the timing). Steady-state epochs (the first one excluded). Ratio = "
            "images/s / the fastest hand-written loop's, within a repetition.",
            "",
            "| | training images/s | ratio to the fastest loop |",
            "|---|---|---|",
        ]
        for key, name in f["names"].items():
            cell = _ratio(ratio[key]) if key in ratio else "**1.00**"
            lines.append(
                f"| {name} | {_seconds(rate[key]).replace(' s', '')} | {cell} |"
            )
        lines.append("")
    if "memory" in results and "rows" in results["memory"]:
        m = results["memory"]
        lines += [
            "## 5. Peak memory transforming many files",
            "",
            f"{m['model']}, preprocessing {m['preprocessing']}, {m['data']}, "
            f"each size in a fresh process: resident memory (VmRSS) after fit "
            f"and a warm-up, and its peak (VmHWM, reset just before) during "
            f"`transform`.",
            "",
            "| images | RSS before (MB) | peak RSS during transform (MB) | growth (MB) "
            "| output array (MB) | seconds |",
            "|---|---|---|---|---|---|",
        ]
        for r in m["rows"]:
            lines.append(
                f"| {r['images']} | {r['rss_before_mb']:.0f} | "
                f"{r['peak_rss_during_mb']:.0f} | {r['growth_mb']:.1f} | "
                f"{r['output_mb']:.1f} | {r['seconds']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)
