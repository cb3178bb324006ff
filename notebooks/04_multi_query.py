# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Multi-query evaluation of the baseline
#
# Reuses the trained baseline (no retraining) and evaluates pools of n IR queries per identity and
# camera fused by average, maximum or similarity-weighted mean. Each point is a cached evaluation
# over the same gallery trials as the single-query protocol.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
variant = "baseline"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input", "remove-stderr"]
from mace_core.analysis import figures, runviews, tables
from mace_core.study import evaluate_variant, run_variant

run = run_variant("04_multi_query", variant, profile, params_dir, runs_dir)
sweep = run.study["multi_query"]
evals = [{"seed": run.seed, "n": n, "fusion": f,
          "results": evaluate_variant("04_multi_query", variant, profile, params_dir, runs_dir, multi_query=n, fusion=f)}
         for n in sweep["n"] for f in sweep["fusion"]]
tables.show(tables.multi_query_table(evals, run))

# %% [markdown]
# ## Rank-1 and mAP against the pool size

# %% tags=["remove-input", "remove-stderr"]
fig = figures.metric_curves(tables.multi_query_frame(evals), x="n", hue="fusion",
                            title="multi-query fusion (mean ± std over trials)", xlabel="queries per pool (n)")

# %% [markdown]
# ## Single query vs a fused pool
#
# For a few identities: the top-5 gallery images for one IR query, then for the average of a pool
# of five IR images of the same identity and camera (green frame: same identity).

# %% tags=["remove-input", "remove-stderr"]
grid = runviews.retrieval_figure(run, n_queries=3, k=5, seed=0, pool=5, fusion="avg")
