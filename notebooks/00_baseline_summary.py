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
# # Summary: baseline (Table 3)
#
# Stored results of every experiment-0 run of this profile, beside the thesis's Table 3.

# %% tags=["parameters"]
profile = "smoke"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-stderr"]
from mace_core.analysis import figures, tables
from mace_core.study import load_results

runs = load_results("00_baseline", profile, params_dir, runs_dir)
tables.show(tables.baseline_table(runs))

# %% tags=["remove-stderr"]
fig = figures.training_curves(runs[0].log, title=f"{runs[0].variant}: training curves")
