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
# # Summary: multi-query fusion (Table 7)
#
# The stored multi-query evaluations of the trained baseline, beside Table 7.

# %% tags=["parameters"]
profile = "smoke"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-stderr"]
from mace_core.analysis import figures, tables
from mace_core.study import evaluate_variant, load_results

runs = load_results("04_multi_query", profile, params_dir, runs_dir)
run = runs[0]
sweep = run.study["multi_query"]
evals = [{"n": n, "fusion": f, "results": evaluate_variant("04_multi_query", run.variant, profile, params_dir,
                                                             runs_dir, multi_query=n, fusion=f)}
         for n in sweep["n"] for f in sweep["fusion"]]
tables.show(tables.multi_query_table(evals, run))

# %% tags=["remove-stderr"]
fig = figures.metric_curves(tables.multi_query_frame(evals), x="n", hue="fusion", xlabel="queries per pool (n)")
