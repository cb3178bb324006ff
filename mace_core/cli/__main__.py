"""`python -m mace_core.cli ...` (used with torchrun for DDP training)."""
import sys

from mace_core.cli import main

sys.exit(main())
