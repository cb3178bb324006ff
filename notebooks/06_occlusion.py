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
# # Occlusion run
#
# Evaluates one model (the reused baseline, or one of the occlusion-trained models) on clean IR queries and
# under each occlusion type, and shows what the occlusions look like and how they change a ranking.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
variant = "baseline"
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input", "remove-stderr"]
from mace_core.analysis import figures, runviews, tables
from mace_core.study import evaluate_variant, run_variant

run = run_variant("06_occlusion", variant, profile, params_dir, runs_dir)
kinds = run.study["occlusion"]["types"]
evals = [{"seed": run.seed, "model": variant, "occlusion": kind,
          "results": evaluate_variant("06_occlusion", variant, profile, params_dir, runs_dir, occlusion=kind)}
         for kind in kinds]

# %% [markdown]
# ## Occlusion types

# %% tags=["remove-input", "remove-stderr"]
examples = runviews.occlusion_examples_figure(run, kinds, seed=0)

# %% [markdown]
# ## Table 9 rows of this model

# %% tags=["remove-input", "remove-stderr"]
tables.show(tables.occlusion_table([run], evals))

# %% tags=["remove-input", "remove-stderr"]
fig = figures.occlusion_drops(tables.occlusion_frame([run], evals), title=f"{variant}: drop under occlusion")

# %% [markdown]
# ## Top-5 retrieval, clean vs occluded

# %% tags=["remove-input", "remove-stderr"]
grid = runviews.occlusion_retrieval_figure(run, kinds, k=5, seed=0)
