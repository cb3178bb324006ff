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
# # Identity-fraction run
#
# Trains (or reuses) the baseline on a seeded, nested subset of the training identities and shows
# its metrics beside the thesis's Table 8 column for that fraction.
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

variant = "fraction_100" if variant == "baseline" else variant
run = run_variant("05_data_efficiency", variant, profile, params_dir, runs_dir)
print(f"identity fraction {run.config.data.id_fraction:.0%}: {run.results['num_classes']} training identities")
tables.show(tables.fraction_table([run]))

# %% [markdown]
# ## Training curves

# %% tags=["remove-input", "remove-stderr"]
fig = figures.training_curves(run.log, title=f"{run.config.data.id_fraction:.0%} of the training identities")
