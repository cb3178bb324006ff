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
# # Occlusion run
#
# Evaluates one model (the reused baseline, or one of the occlusion-trained models) on clean IR queries and
# under each occlusion type, and shows what the occlusions look like and how they change a ranking.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/ (smoke: CPU; paper: the thesis on real SYSU-MM01)
variant = None            # a YAML of params/06_occlusion/ (the study runner passes it); None: baseline
occlusion = None          # training augmentation: none | random_rect | horizontal_band | ...
occlusion_types = None    # test-time occlusion types to sweep, a list; None: the YAML's sweep
seed = None               # a training seed of the variant's study.seeds; None: its first
overrides = {}            # dotted config keys, e.g. {"train.epochs": 10, "data.root": "/data/SYSU-MM01"}
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input"]
from mace_core.analysis import figures, occlusion_tables, runviews, tables
from mace_core.study import notebook_run, occlusion_evals

page = notebook_run("06_occlusion", globals())   # checks the parameters before anything trains
run = page.run()
kinds = page.study["occlusion"]["types"]
evals = occlusion_evals([run], kinds)

# %% [markdown]
# ## Occlusion types

# %% tags=["remove-input"]
examples = runviews.occlusion_examples_figure(run, kinds, seed=0)

# %% [markdown]
# ## Table 9 rows of this model

# %% tags=["remove-input"]
tables.show(occlusion_tables.occlusion_table([run], evals))

# %% tags=["remove-input"]
fig = figures.occlusion_drops(occlusion_tables.occlusion_frame([run], evals), title=f"{page.name}: drop under occlusion")

# %% [markdown]
# ## Top-5 retrieval, clean vs occluded

# %% tags=["remove-input"]
grid = runviews.occlusion_retrieval_figure(run, kinds, k=5, seed=0)
