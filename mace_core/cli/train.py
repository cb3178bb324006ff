"""`mace train`: train one configuration into a run directory (also under torchrun for DDP)."""
from __future__ import annotations


def _train(args) -> int:
    from mace_core.config import load_config
    from mace_core.engine.train import train, train_config_summary

    cfg = load_config(args.params, args.set or [])
    from mace_core.data.synthetic import source_of
    cfg.data.source = source_of(cfg.data.root) or cfg.data.source   # the data's own label (its generator's marker)
    results = train(cfg, run_dir=args.run_dir, resume=args.resume, progress=not args.no_progress)
    if results:  # rank 0 only
        print(train_config_summary(results))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a MACE model from YAML params",
                              description="Train a MACE model. Under `torchrun --nproc_per_node N -m mace_core.cli "
                                          "train ...` the same command trains with DDP.")
    p.add_argument("--params", nargs="+", required=True, metavar="FILE",
                   help="YAML params files, merged left to right (later wins)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting, e.g. train.epochs=5")
    p.add_argument("--run-dir", default=None,
                   help="run directory (default: <output_dir>/<experiment>/<name>-<config hash>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from <run-dir>/checkpoints/last.pt (exactly as if never interrupted)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)
