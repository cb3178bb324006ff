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
# # Fusion run
#
# Trains (or reuses) one fusion variant, shows its metrics beside the thesis's Table 6 row, the
# adaptive gate's weights (adaptive fusion only) and a t-SNE map of test embeddings.
#
# This page shows one training run, the variant's first training seed; the chapter's summary page
# aggregates every seed.

# %% tags=["parameters", "remove-cell"]
profile = "smoke"         # a profile of params/profiles/ (smoke: CPU; paper: the thesis on real SYSU-MM01)
variant = None            # a YAML of params/03_fusion/ (the study runner passes it); None: concat
fusion = None             # concat | adaptive | transform
seed = None               # a training seed of the variant's study.seeds; None: its first
overrides = {}            # dotted config keys, e.g. {"train.epochs": 10, "data.root": "/data/SYSU-MM01"}
params_dir = "params"
runs_dir = "runs"

# %% tags=["remove-input"]
from mace_core.analysis import figures, runviews, tables
from mace_core.study import notebook_run

page = notebook_run("03_fusion", globals())   # checks the parameters before anything trains
run = page.run()
tables.show(tables.fusion_table([run]))

# %% [markdown]
# ## Training curves

# %% tags=["remove-input"]
fig = figures.training_curves(run.log, title=f"{page.name} fusion ({profile} profile)")

# %% [markdown]
# ## Gate weights and embedding map
#
# For adaptive fusion, the weight the gate gives the modality-specific branch on each test image
# (the shared branch gets the rest). The t-SNE map shows IR queries (triangles) and RGB images
# (circles) of a few test identities, one colour per identity: a good embedding puts both
# modalities of an identity together.

# %% tags=["remove-input"]
if run.config.model.fusion == "adaptive":
    gate = runviews.gate_figure(run)
tsne = runviews.tsne_of_run(run, max_ids=10, seed=0)
