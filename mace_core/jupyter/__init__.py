"""Jupyter: the project's kernel, its one name (kernel.py), JupyterLab on the project (lab.py) and its
browser check (labcheck.py). Knows nothing of the study, which runs its notebooks on this kernel."""
