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
# # Backbone run
#
# Trains (or reuses) one backbone variant and shows its metrics, size and training time beside the
# thesis's Table 4 row, and its training curves.
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

run = run_variant("01_backbones", variant, profile, params_dir, runs_dir)
print(f"backbone: {run.config.model.backbone} (pooling {run.config.model.pooling}), "
      f"{run.results['parameters'] / 1e6:.1f} M parameters")

# %% tags=["remove-input", "remove-stderr"]
tables.show(tables.backbone_table([run]))

# %% [markdown]
# ## Training curves

# %% tags=["remove-input", "remove-stderr"]
fig = figures.training_curves(run.log, title=f"{variant} ({run.config.model.backbone})")
