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
# # Summary: fusion (Table 6)
#
# Every fusion variant of this profile (concat is the baseline), beside Table 6.

# %% tags=["parameters"]
profile = "smoke"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-stderr"]
from mace_core.analysis import figures, tables
from mace_core.study import load_results

runs = load_results("03_fusion", profile, params_dir, runs_dir)
tables.show(tables.fusion_table(runs))

# %% tags=["remove-stderr"]
fig = figures.comparison_bars(tables.comparison_frame(runs, tables.thesis_for("03_fusion")),
                              title="fusion: ours beside the thesis")
