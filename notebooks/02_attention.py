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
# # Attention run
#
# Trains (or reuses) one attention variant, shows its metrics beside the thesis's Table 5 row, and
# plots what the attention modules learnt on IR and RGB test images of the same identities.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/ (smoke: CPU; paper: the thesis on real SYSU-MM01)
variant = None            # a YAML of params/02_attention/ (the study runner passes it); None: cam
attention = None          # none | cam | sam | dam
seed = None               # a training seed of the variant's study.seeds; None: its first
overrides = {}            # dotted config keys, e.g. {"train.epochs": 10, "data.root": "/data/SYSU-MM01"}
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input"]
from mace_core.analysis import figures, runviews, tables
from mace_core.study import notebook_run

page = notebook_run("02_attention", globals())   # default cam: the baseline has no attention to show
run = page.run()
tables.show(tables.attention_table([run]))

# %% [markdown]
# ## Training curves

# %% tags=["remove-input"]
fig = figures.training_curves(run.log, title=f"{page.name} ({profile} profile)")

# %% [markdown]
# ## Learnt attention
#
# Channel attention (CAM, DAM) as the weights of the first 64 channels, averaged over the shown
# images; spatial attention (SAM, DAM) as heatmaps over the input, after the stem and before
# pooling.

# %% tags=["remove-input"]
views = runviews.attention_figures(run, per_modality=2, seed=0)
print("shown:", ", ".join(views))
