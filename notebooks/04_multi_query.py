# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python (mace-study)
#     language: python
#     name: mace-study
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
profile = "smoke"         # a profile of params/profiles/ (smoke: CPU; paper: the thesis on real SYSU-MM01)
variant = None            # a YAML of params/04_multi_query/ (the study runner passes it); None: baseline
pool_sizes = None         # queries per pool to sweep, e.g. [1, 5, 10]; None: the YAML's sweep
fusions = None            # avg | max | weighted, a list; None: the YAML's sweep
seed = None               # a training seed of the variant's study.seeds; None: its first
overrides = {}            # dotted config keys, e.g. {"train.epochs": 10, "data.root": "/data/SYSU-MM01"}
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input"]
from mace_core.analysis import figures, multi_query_tables, runviews, tables
from mace_core.study import multi_query_evals, notebook_run

page = notebook_run("04_multi_query", globals())   # checks the parameters before anything trains
run = page.run()
evals = multi_query_evals([run])   # every pool size and fusion of the variant's sweep
tables.show(multi_query_tables.multi_query_table(evals, run))

# %% [markdown]
# ## Rank-1 and mAP against the pool size

# %% tags=["remove-input"]
fig = figures.metric_curves(multi_query_tables.multi_query_frame(evals), x="n", hue="fusion",
                            title="multi-query fusion (mean ± std over trials)", xlabel="queries per pool (n)")

# %% [markdown]
# ## Single query vs a fused pool
#
# For a few identities: the top-5 gallery images for one IR query, then for the average of a pool
# of five IR images of the same identity and camera (green frame: same identity).

# %% tags=["remove-input"]
grid = runviews.retrieval_figure(run, n_queries=3, k=5, seed=0, pool=5, fusion="avg")
