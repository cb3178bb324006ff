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
from mace_core.analysis import figures, multi_query_tables, tables
from mace_core.study import check_summary, evaluate_variant, load_results

profile, params_dir, runs_dir = check_summary("04_multi_query", globals())  # refuses unknown parameters

runs = load_results("04_multi_query", profile, params_dir, runs_dir)
sweep = runs[0].study["multi_query"]
evals = [{"seed": run.seed, "n": n, "fusion": f,
          "results": evaluate_variant("04_multi_query", run.variant, profile, params_dir, runs_dir, seed=run.seed,
                                      multi_query=n, fusion=f)}
         for run in runs for n in sweep["n"] for f in sweep["fusion"]]

# %% tags=["remove-input", "remove-stderr"]
tables.show(multi_query_tables.multi_query_table(evals, runs, "R1"))

# %% tags=["remove-input", "remove-stderr"]
tables.show(multi_query_tables.multi_query_table(evals, runs, "mAP"))

# %% tags=["remove-input", "remove-stderr"]
fig = figures.metric_curves(multi_query_tables.multi_query_frame(evals), x="n", hue="fusion",
                            title="multi-query fusion (mean ± std over seeds)", xlabel="queries per pool (n)")

# %% [markdown]
# ## Finding

# %% tags=["remove-input", "remove-stderr"]
tables.show_finding(multi_query_tables.multi_query_finding(evals))
