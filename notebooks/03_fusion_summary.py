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
# # Summary: fusion (Table 6)
#
# Every fusion variant of this profile over its training seeds (concat is the baseline), beside Table 6.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-cell"]
from mace_core.analysis import figures, forest, tables, thesis_rows
from mace_core.study import check_summary, load_results

profile, params_dir, runs_dir = check_summary("03_fusion", globals())  # refuses unknown parameters

runs = load_results("03_fusion", profile, params_dir, runs_dir)

# %% tags=["remove-input"]
tables.show(tables.comparison_table("03_fusion", runs))

# %% [markdown]
# ## Every metric

# %% tags=["remove-input"]
tables.show(tables.metrics_table("03_fusion", runs))

# %% tags=["remove-input"]
fig = figures.comparison_bars(tables.comparison_frame(runs, thesis_rows.thesis_for("03_fusion")),
                              title="ours (mean ± std over seeds) beside the thesis")

# %% [markdown]
# ## Finding

# %% tags=["remove-input"]
tables.show_finding(tables.experiment_finding("03_fusion", runs))

# %% [markdown]
# ## Forest plot
# Every contrast of the chapter's one Holm family (listed under the finding): our difference with its
# 95 % interval (filled: distinguishable after Holm), the thesis's difference (diamond) and the
# difference the study detects with 80 % power (grey band).

# %% tags=["remove-input"]
fig = forest.show_forest("03_fusion", runs)
