"""The study layer: params/ variants, the cached run registry, the notebook API, and the runner (plan,
execution, worker pool) that executes the notebooks and hands the result to the book build."""
from mace_core.study.api import (RunResult, evaluate_variant, list_variants, load_results, multi_query_evals,
                                 occlusion_evals, run_dir_of, run_seeds, run_variant, seeds_of)

__all__ = ["RunResult", "run_variant", "run_seeds", "load_results", "evaluate_variant", "multi_query_evals",
           "occlusion_evals", "list_variants", "run_dir_of", "seeds_of"]
from mace_core.study.notebook import NotebookRun, check_summary, notebook_run  # noqa: E402

__all__ += ["NotebookRun", "notebook_run", "check_summary"]
