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
# # Summary: training-data efficiency (Table 8)
#
# Every identity fraction of this profile over its training seeds, beside Table 8, and the metrics
# against the fraction (dashed: the thesis on real SYSU-MM01).

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-cell"]
from mace_core.analysis import figures, forest, tables
from mace_core.study import check_summary, load_results

profile, params_dir, runs_dir = check_summary("05_data_efficiency", globals())  # refuses unknown parameters

runs = load_results("05_data_efficiency", profile, params_dir, runs_dir)

# %% tags=["remove-input"]
tables.show(tables.comparison_table("05_data_efficiency", runs))

# %% [markdown]
# ## Every metric

# %% tags=["remove-input"]
tables.show(tables.metrics_table("05_data_efficiency", runs))

# %% tags=["remove-input"]
fig = figures.metric_curves(tables.fraction_curve_data(runs), x="fraction", hue="source",
                            title="metrics against the fraction of training identities (ours: mean ± std over seeds)",
                            xlabel="fraction of training identities")

# %% [markdown]
# ## Finding

# %% tags=["remove-input"]
tables.show_finding(tables.experiment_finding("05_data_efficiency", runs))

# %% [markdown]
# ## Forest plot
# Every contrast of the chapter's one Holm family (listed under the finding): our difference with its
# 95 % interval (filled: distinguishable after Holm), the thesis's difference (diamond) and the
# difference the study detects with 80 % power (grey band).

# %% tags=["remove-input"]
fig = forest.show_forest("05_data_efficiency", runs)
