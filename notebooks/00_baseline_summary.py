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
# # Summary: baseline (Table 3)
#
# Every training seed of the experiment-0 baseline on this profile, beside the thesis's Table 3.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-cell"]
from mace_core.analysis import figures, tables
from mace_core.study import check_summary, load_results

profile, params_dir, runs_dir = check_summary("00_baseline", globals())  # refuses unknown parameters

runs = load_results("00_baseline", profile, params_dir, runs_dir)

# %% tags=["remove-input"]
tables.show(tables.baseline_table(runs))

# %% [markdown]
# ## Training curves
#
# The run of the first training seed.

# %% tags=["remove-input"]
fig = figures.training_curves(runs[0].log, title=f"{runs[0].variant}, seed {runs[0].seed}: training curves")

# %% [markdown]
# ## Finding

# %% tags=["remove-input"]
tables.show_finding(tables.experiment_finding("00_baseline", runs))
