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
# # Baseline run
#
# Trains (or reuses) the MACE baseline of this profile and shows its Table 3 metrics beside the
# thesis's replication, and its training curves.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
variant = "baseline"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input", "remove-stderr"]
from mace_core.analysis import figures, tables
from mace_core.study import run_variant

run = run_variant("00_baseline", variant, profile, params_dir, runs_dir)
print(f"run: {run.run_dir.name}  data: {run.config.data.source}  selection: {run.results['model_selection']}")

# %% [markdown]
# ## Table 3: test metrics

# %% tags=["remove-input", "remove-stderr"]
tables.show(tables.baseline_table(run))

# %% [markdown]
# ## Training curves
#
# Every loss term per epoch (the four cross-entropy heads and both distillation directions as thin
# lines under their sums), training accuracy with the learning rate and distillation weight λ₂, and
# the test metrics at each evaluation.

# %% tags=["remove-input", "remove-stderr"]
fig = figures.training_curves(run.log, title=f"{variant} ({profile} profile)")
