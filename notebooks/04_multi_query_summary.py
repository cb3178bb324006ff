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
# # Summary: multi-query fusion (Table 7)
#
# The trained baseline of every training seed, evaluated with pools of n IR queries per identity and
# camera, beside Table 7.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-cell"]
from mace_core.analysis import figures, forest, multi_query_tables, tables
from mace_core.study import check_summary, load_results, multi_query_evals

profile, params_dir, runs_dir = check_summary("04_multi_query", globals())  # refuses unknown parameters

runs = load_results("04_multi_query", profile, params_dir, runs_dir)
evals = multi_query_evals(runs)   # every seed × pool size × fusion of the sweep

# %% tags=["remove-input"]
tables.show(multi_query_tables.multi_query_table(evals, runs, "R1"))

# %% tags=["remove-input"]
tables.show(multi_query_tables.multi_query_table(evals, runs, "mAP"))

# %% tags=["remove-input"]
fig = figures.metric_curves(multi_query_tables.multi_query_frame(evals), x="n", hue="fusion",
                            title="multi-query fusion (mean ± std over seeds)", xlabel="queries per pool (n)")

# %% [markdown]
# ## Finding

# %% tags=["remove-input"]
tables.show_finding(multi_query_tables.multi_query_finding(evals))

# %% [markdown]
# ## Forest plot
# Every contrast of the chapter's one Holm family (listed under the finding): our difference with its
# 95 % interval (filled: distinguishable after Holm), the thesis's difference (diamond) and the
# difference the study detects with 80 % power (grey band).

# %% tags=["remove-input"]
fig = forest.show_forest("04_multi_query", [], evals)
