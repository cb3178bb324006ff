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
# # Summary: attention (Table 5)
#
# The baseline (no attention) and every attention variant of this profile, beside Table 5.

# %% tags=["parameters"]
profile = "smoke"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-stderr"]
from mace_core.analysis import figures, tables
from mace_core.study import load_results

base = load_results("00_baseline", profile, params_dir, runs_dir)
runs = load_results("02_attention", profile, params_dir, runs_dir)
tables.show(tables.attention_table(base + runs))

# %% tags=["remove-stderr"]
fig = figures.comparison_bars(tables.comparison_frame(base + runs, tables.thesis_for("02_attention")),
                              title="attention: ours beside the thesis")
