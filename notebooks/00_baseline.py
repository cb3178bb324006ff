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
# # Baseline run
#
# Trains (or reuses) the MACE baseline of this profile and shows its Table 3 metrics beside the
# thesis's replication, and its training curves.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/ (smoke: CPU; paper: the thesis on real SYSU-MM01)
variant = None            # a YAML of params/00_baseline/ (the study runner passes it); None: baseline
seed = None               # a training seed of the variant's study.seeds; None: its first
overrides = {}            # dotted config keys, e.g. {"train.epochs": 10, "data.root": "/data/SYSU-MM01"}
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input"]
from mace_core.analysis import figures, tables
from mace_core.study import notebook_run

page = notebook_run("00_baseline", globals())   # checks the parameters before anything trains
run = page.run()                                # trains, or reuses the cached run of the same config
print(f"run: {run.run_dir.name}  data: {run.config.data.source}  selection: {run.results['model_selection']}")

# %% [markdown]
# ## Table 3: test metrics

# %% tags=["remove-input"]
tables.show(tables.baseline_table(run))

# %% [markdown]
# ## Training curves
#
# Every loss term per epoch (the four cross-entropy heads and both distillation directions as thin
# lines under their sums), training accuracy with the learning rate and distillation weight λ₂, and
# the test metrics at each evaluation.

# %% tags=["remove-input"]
fig = figures.training_curves(run.log, title=f"{page.name} ({profile} profile)")
