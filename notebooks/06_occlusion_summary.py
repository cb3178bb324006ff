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
# # Summary: occlusion robustness (Table 9)
#
# The baseline and the occlusion-trained models (one per augmentation type) on clean and occluded IR
# queries, beside Table 9.

# %% tags=["parameters"]
profile = "smoke"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-stderr"]
from mace_core.analysis import figures, tables
from mace_core.study import evaluate_variant, load_results

runs = load_results("06_occlusion", profile, params_dir, runs_dir)
evals = []
for run in runs:
    evals.append({"model": run.variant, "occlusion": None, "results": run.results})
    evals += [{"model": run.variant, "occlusion": kind,
               "results": evaluate_variant("06_occlusion", run.variant, profile, params_dir, runs_dir, occlusion=kind)}
              for kind in run.study["occlusion"]["types"]]
base = [r for r in runs if r.config.data.occlusion_p == 0]
trained = [r for r in runs if r.config.data.occlusion_p > 0]
tables.show(tables.occlusion_table(base[0], trained, evals))

# %% tags=["remove-stderr"]
fig = figures.occlusion_drops(tables.occlusion_frame(base[0], trained, evals), title="Rank-1 and mAP drop under occlusion")
