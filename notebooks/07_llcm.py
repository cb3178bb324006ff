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
# # LLCM run
#
# Trains (or reuses) the baseline of this profile on LLCM and shows its test metrics in both
# directions (IR→VIS: every near-infrared test image queries one visible image per identity and
# camera; VIS→IR: the other way round), as mean ± std over the ten seeded gallery trials, for
# each training seed of the profile. The protocol is described on the methods page.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/ (smoke: a small synthetic LLCM-like set, generated when missing)
variant = None            # a YAML of params/07_llcm/ (the study runner passes it); None: baseline
seed = None               # one training seed of study.seeds; None: every seed of the variant
overrides = {}            # dotted config keys, e.g. {"train.epochs": 10}
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input"]
from mace_core.analysis import figures, tables
from mace_core.study import notebook_run

page = notebook_run("07_llcm", globals())   # checks the parameters before anything trains
runs = page.run_seeds() if seed is None else [page.run()]
run = runs[0]
print(f"data: {run.config.data.source} LLCM; selection: {run.results['model_selection']}; "
      f"training identities: {run.results['num_classes']}; seeds: {[r.seed for r in runs]}")

# %% [markdown]
# ## Test metrics, both directions

# %% tags=["remove-input"]
tables.show(tables.llcm_table(runs, profile))

# %% [markdown]
# ## Training curves

# %% tags=["remove-input"]
fig = figures.training_curves(run.log, title=f"LLCM {page.name} ({profile} profile)")
