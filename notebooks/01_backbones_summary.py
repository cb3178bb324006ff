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
# # Summary: backbones (Table 4)
#
# All backbone variants of this profile with parameter count, training time and the reported epoch,
# each beside the thesis's numbers for the backbone family it stands for.

# %% tags=["parameters"]
profile = "smoke"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-stderr"]
from mace_core.analysis import figures, tables
from mace_core.study import load_results

runs = load_results("01_backbones", profile, params_dir, runs_dir)
tables.show(tables.backbone_table(runs))

# %% tags=["remove-stderr"]
fig = figures.comparison_bars(tables.comparison_frame(runs, tables.thesis_for("01_backbones")),
                              title="backbones: ours beside the thesis")
