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
# # Attention run
#
# Trains (or reuses) one attention variant, shows its metrics beside the thesis's Table 5 row, and
# plots what the attention modules learnt on IR and RGB test images of the same identities.
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
from mace_core.study import run_variant

variant = "cam" if variant == "baseline" else variant  # the baseline has no attention to show
run = run_variant("02_attention", variant, profile, params_dir, runs_dir)
tables.show(tables.attention_table([run]))

# %% [markdown]
# ## Training curves

# %% tags=["remove-input", "remove-stderr"]
fig = figures.training_curves(run.log, title=f"{variant} ({profile} profile)")

# %% [markdown]
# ## Learnt attention
#
# Channel attention (CAM, DAM) as the weights of the first 64 channels, averaged over the shown
# images; spatial attention (SAM, DAM) as heatmaps over the input, after the stem and before
# pooling.

# %% tags=["remove-input", "remove-stderr"]
views = runviews.attention_figures(run, per_modality=2, seed=0)
print("shown:", ", ".join(views))
