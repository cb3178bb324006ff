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
# # Identity-fraction run
#
# Trains (or reuses) the baseline on a seeded, nested subset of the training identities and shows
# its metrics beside the thesis's Table 8 column for that fraction.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/ (smoke: CPU; paper: the thesis on real SYSU-MM01)
variant = None            # a YAML of params/05_data_efficiency/ (the study runner passes it); None: fraction_100
fraction = None           # share of the training identities in (0, 1], e.g. 0.33
seed = None               # a training seed of the variant's study.seeds; None: its first
overrides = {}            # dotted config keys, e.g. {"train.epochs": 10, "data.root": "/data/SYSU-MM01"}
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input"]
from mace_core.analysis import figures, tables
from mace_core.study import notebook_run

page = notebook_run("05_data_efficiency", globals())   # checks the parameters before anything trains
run = page.run()
print(f"identity fraction {run.config.data.id_fraction:.0%}: {run.results['num_classes']} training identities")
tables.show(tables.fraction_table([run]))

# %% [markdown]
# ## Training curves

# %% tags=["remove-input"]
fig = figures.training_curves(run.log, title=f"{run.config.data.id_fraction:.0%} of the training identities")
