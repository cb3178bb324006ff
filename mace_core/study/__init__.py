"""The study layer: params/ variants, the cached run registry, the notebook API and the runner."""
from mace_core.study.api import (RunResult, evaluate_variant, list_variants, load_results, run_dir_of,
                                 run_variant)

__all__ = ["RunResult", "run_variant", "load_results", "evaluate_variant", "list_variants", "run_dir_of"]
