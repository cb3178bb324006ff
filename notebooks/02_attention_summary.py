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
# # Summary: attention (Table 5)
#
# The baseline (no attention) and every attention variant of this profile over their training seeds,
# beside Table 5.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-cell"]
from mace_core.analysis import figures, forest, tables, thesis_rows
from mace_core.study import check_summary, load_results

profile, params_dir, runs_dir = check_summary("02_attention", globals())  # refuses unknown parameters

runs = load_results("00_baseline", profile, params_dir, runs_dir) + load_results("02_attention", profile, params_dir, runs_dir)

# %% tags=["remove-input"]
tables.show(tables.comparison_table("02_attention", runs))

# %% [markdown]
# ## Every metric

# %% tags=["remove-input"]
tables.show(tables.metrics_table("02_attention", runs))

# %% tags=["remove-input"]
fig = figures.comparison_bars(tables.comparison_frame(runs, thesis_rows.thesis_for("02_attention")),
                              title="ours (mean ± std over seeds) beside the thesis")

# %% [markdown]
# ## Finding

# %% tags=["remove-input"]
tables.show_finding(tables.experiment_finding("02_attention", runs))

# %% [markdown]
# ## Forest plot
# Every contrast of the chapter's one Holm family (listed under the finding): our difference with its
# 95 % interval (filled: distinguishable after Holm), the thesis's difference (diamond) and the
# difference the study detects with 80 % power (grey band).

# %% tags=["remove-input"]
fig = forest.show_forest("02_attention", runs)
