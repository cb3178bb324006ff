"""`mace` command line: `mace data|train|eval|bench|study|kernel|lab ...`.

Each sub-command group lives in its own module exposing ``register(subparsers)``; the module
sets ``func`` on its parser. A :class:`~mace_core.errors.MaceError` is printed as one line
(no traceback) and exits with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from mace_core.errors import MaceError

# Sub-command modules, in the order they appear in `mace --help`.
_COMMAND_MODULES = ("data", "train", "eval", "bench", "study", "lab")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mace", description="MACE infrared-visible re-identification study")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mace_core.cli.{name}")
        except ModuleNotFoundError as exc:  # a command group not written yet
            if exc.name == f"mace_core.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except MaceError as exc:
        print(f"mace: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mace: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
