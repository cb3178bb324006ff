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
# # Summary: occlusion robustness (Table 9)
#
# The baseline and the occlusion-trained models (one per augmentation type) of every training seed on
# clean and occluded IR queries, beside Table 9.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-cell"]
from mace_core.analysis import figures, forest, occlusion_tables, tables
from mace_core.study import check_summary, load_results, occlusion_evals

profile, params_dir, runs_dir = check_summary("06_occlusion", globals())  # refuses unknown parameters

runs = load_results("06_occlusion", profile, params_dir, runs_dir)
evals = occlusion_evals(runs)   # every model × seed × occlusion type of its sweep

# %% tags=["remove-input"]
tables.show(occlusion_tables.occlusion_table(runs, evals))

# %% tags=["remove-input"]
fig = figures.occlusion_drops(occlusion_tables.occlusion_frame(runs, evals), title="Rank-1 and mAP drop under occlusion (mean over seeds)")

# %% [markdown]
# ## Finding

# %% tags=["remove-input"]
tables.show_finding(occlusion_tables.occlusion_finding(runs, evals))

# %% [markdown]
# ## Forest plot
# Every contrast of the chapter's one Holm family (listed under the finding): our difference with its
# 95 % interval (filled: distinguishable after Holm), the thesis's difference (diamond) and the
# difference the study detects with 80 % power (grey band).

# %% tags=["remove-input"]
fig = forest.show_forest("06_occlusion", runs, evals)
