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
# # Backbone run
#
# Trains (or reuses) one backbone variant and shows its metrics, size and training time beside the
# thesis's Table 4 row, and its training curves.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/ (smoke: CPU; paper: the thesis on real SYSU-MM01)
variant = None            # a YAML of params/01_backbones/ (the study runner passes it); None: resnet50
backbone = None           # a timm resnet*/seresnet*/efficientnet_*/tresnet_*/convnext* name
seed = None               # a training seed of the variant's study.seeds; None: its first
overrides = {}            # dotted config keys, e.g. {"train.epochs": 10, "data.root": "/data/SYSU-MM01"}
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input"]
from mace_core.analysis import figures, tables
from mace_core.study import notebook_run

page = notebook_run("01_backbones", globals())   # checks the parameters before anything trains
run = page.run()
print(f"backbone: {run.config.model.backbone} (pooling {run.config.model.pooling}), "
      f"{run.results['parameters'] / 1e6:.1f} M parameters")

# %% tags=["remove-input"]
tables.show(tables.backbone_table([run]))

# %% [markdown]
# ## Training curves

# %% tags=["remove-input"]
fig = figures.training_curves(run.log, title=f"{page.name} ({run.config.model.backbone})")
