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
# # Summary: backbones (Table 4)
#
# Every backbone variant of this profile over its training seeds, each beside the thesis's numbers for
# the backbone family it stands for (ResNet: the baseline).

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-cell"]
from mace_core.analysis import figures, forest, tables, thesis_rows
from mace_core.study import check_summary, load_results

profile, params_dir, runs_dir = check_summary("01_backbones", globals())  # refuses unknown parameters

runs = load_results("01_backbones", profile, params_dir, runs_dir)

# %% tags=["remove-input"]
tables.show(tables.comparison_table("01_backbones", runs))

# %% [markdown]
# ## Size and training time

# %% tags=["remove-input"]
tables.show(tables.backbone_cost_table(runs))

# %% [markdown]
# ## Every metric

# %% tags=["remove-input"]
tables.show(tables.metrics_table("01_backbones", runs))

# %% tags=["remove-input"]
fig = figures.comparison_bars(tables.comparison_frame(runs, thesis_rows.thesis_for("01_backbones")),
                              title="ours (mean ± std over seeds) beside the thesis")

# %% [markdown]
# ## Finding

# %% tags=["remove-input"]
tables.show_finding(tables.experiment_finding("01_backbones", runs))

# %% [markdown]
# ## Forest plot
# Every contrast of the chapter's one Holm family (listed under the finding): our difference with its
# 95 % interval (filled: distinguishable after Holm), the thesis's difference (diamond) and the
# difference the study detects with 80 % power (grey band).

# %% tags=["remove-input"]
fig = forest.show_forest("01_backbones", runs)
