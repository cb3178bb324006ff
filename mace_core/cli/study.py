"""`mace study run|book|list|exec|dry-run`: the study runner, the book build, the status table, one Slurm task,
the paper-profile dry run."""
from __future__ import annotations

import argparse
import sys


def _common(p: argparse.ArgumentParser, profile_required: bool = True) -> None:
    p.add_argument("--profile", required=profile_required, default=None,
                   help="params/profiles/<name>.yaml: smoke (CPU, synthetic), paper (GPU, SYSU-MM01), ci")
    p.add_argument("--params-dir", default="params", help="folder of the study's YAML (default: params)")
    p.add_argument("--runs-dir", default="runs", help="where trained runs are kept (default: runs)")
    p.add_argument("--book-dir", default="book", help="the Jupyter Book folder (default: book)")
    p.add_argument("--notebooks-dir", default="notebooks", help="jupytext notebooks (default: notebooks)")
    p.add_argument("--data-root", default=None,
                   help="dataset folder (overrides data.root; the smoke profile generates it when missing)")
    p.add_argument("--llcm-root", default=None,
                   help="an LLCM folder: adds the optional LLCM layer (experiment 07_llcm, its own chapter)")


def _llcm_env(args) -> None:
    import os

    from mace_core.study.variants import LLCM_ROOT_ENV

    if getattr(args, "llcm_root", None):
        os.environ[LLCM_ROOT_ENV] = os.path.abspath(os.path.expanduser(args.llcm_root))


def register(subparsers) -> None:
    study = subparsers.add_parser("study", help="run the study's notebooks and build the book")
    sub = study.add_subparsers(dest="study_command", metavar="ACTION")
    sub.required = True

    run = sub.add_parser("run", help="execute every (notebook, variant) pair with papermill, then build the book")
    _common(run)
    run.add_argument("--only", default=None, help="comma-separated experiments, e.g. 00,04 (default: all)")
    run.add_argument("--jobs", type=int, default=1, help="pairs run in parallel (one GPU each; default 1)")
    run.add_argument("--force", action="store_true", help="retrain and re-execute the selected pairs")
    run.add_argument("--slurm", action="store_true", help="write job-array scripts instead of running")
    run.add_argument("--slurm-dir", default=None, help="where --slurm writes (default <runs>/<profile>/slurm)")
    run.add_argument("--slurm-partition", default=None)
    run.add_argument("--slurm-time", default="04:00:00")
    run.add_argument("--no-book", action="store_true", help="skip the book build")
    run.set_defaults(func=cmd_run)

    book = sub.add_parser("book", help="regenerate the TOC and runs table from what exists, build the book")
    _common(book)
    book.set_defaults(func=cmd_book)

    ls = sub.add_parser("list", help="every pair of the study and whether it is done")
    _common(ls)
    ls.add_argument("--only", default=None)
    ls.set_defaults(func=cmd_list)

    cfg = sub.add_parser("config", help="print a variant's resolved config as YAML (usable by `mace train --params`)")
    cfg.add_argument("experiment")
    cfg.add_argument("variant")
    cfg.add_argument("--profile", required=True)
    cfg.add_argument("--params-dir", default="params")
    cfg.add_argument("--data-root", default=None)
    cfg.set_defaults(func=cmd_config)

    dry = sub.add_parser("dry-run", help="the exact paper config end to end with a few steps: timed stages, projection")
    dry.add_argument("--profile", default="paper")
    dry.add_argument("--data-root", required=True, help="a SYSU-MM01(-like) folder, e.g. from `mace data synth --like`")
    dry.add_argument("--regdb-root", default=None, help="a RegDB(-like) folder: also evaluate RegDB both ways")
    dry.add_argument("--steps", type=int, default=4,
                     help="steps through the real trainer, and timed steady-state steps (at least 4 x workers x 2 "
                          "so that the loader's queue drains; default 4)")
    dry.add_argument("--warmup", type=int, default=3, help="untimed steps before the steady-state timing (default 3)")
    dry.add_argument("--llcm-root", default=None,
                     help="an LLCM(-like) folder: also train the steps on LLCM and evaluate it both ways")
    dry.add_argument("--json", default=None, metavar="OUT", help="report file (default runs/dry-run/<profile>.json)")
    dry.add_argument("--params-dir", default="params")
    dry.add_argument("--work-dir", default=None, help="the capped run's folder (default runs/dry-run/<profile>)")
    dry.add_argument("--quick-check", action="store_true", help="decode a sample of 50 images, not every one")
    dry.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a setting (then not the exact paper config, and the report says so)")
    dry.set_defaults(func=cmd_dry_run)

    data = sub.add_parser("data", help="write the profile's synthetic dataset (study.synthetic) unless it is "
                                       "already there with the same parameters; check a real one exists")
    data.add_argument("--profile", required=True)
    data.add_argument("--params-dir", default="params")
    data.add_argument("--data-root", default=None, help="dataset folder (default: the profile's data.root)")
    data.set_defaults(func=cmd_data)

    ex = sub.add_parser("exec", help="execute one pair of a --slurm manifest (used by the array jobs)")
    ex.add_argument("--manifest", required=True)
    ex.add_argument("--wave", type=int, required=True)
    ex.add_argument("--index", type=int, required=True)
    ex.set_defaults(func=cmd_exec)


def cmd_run(args) -> int:
    if args.slurm:
        from mace_core.errors import MaceError
        from mace_core.study.slurm import write_slurm

        if args.llcm_root:
            raise MaceError("--llcm-root is not passed on to Slurm array jobs yet",
                            "run the LLCM layer without --slurm: mace study run --profile P --only 07 --llcm-root PATH")

        path = write_slurm(args.profile, args.slurm_dir, args.params_dir, args.runs_dir, args.book_dir,
                           args.notebooks_dir, args.only, args.data_root, partition=args.slurm_partition,
                           time=args.slurm_time)
        print(f"wrote the Slurm job arrays; submit with: bash {path}")
        return 0
    from mace_core.study.runner import run_study

    report = run_study(args.profile, args.params_dir, args.runs_dir, args.book_dir, args.notebooks_dir,
                       only=args.only, jobs=args.jobs, force=args.force, data_root=args.data_root,
                       build=not args.no_book, llcm_root=args.llcm_root)
    print(f"executed {len(report.executed)}, up to date {len(report.skipped)}, failed {len(report.failed)} "
          f"in {report.seconds:.0f} s")
    for result in report.failed:
        print(f"  FAILED {result['label']}: {result['error']}  notebook: {result['notebook']}", file=sys.stderr)
    if report.index is not None:
        print(f"book: {report.index}")
    return 0 if report.ok else 1


def cmd_book(args) -> int:
    _llcm_env(args)
    import os

    from mace_core.study.runner import finish_book
    from mace_core.study.variants import DATA_ROOT_ENV

    if args.data_root:
        os.environ[DATA_ROOT_ENV] = os.path.abspath(os.path.expanduser(args.data_root))
    print(f"book: {finish_book(args.profile, args.params_dir, args.runs_dir, args.book_dir, args.notebooks_dir)}")
    return 0


def cmd_list(args) -> int:
    _llcm_env(args)
    import os

    from mace_core.study.planning import is_fresh, plan
    from mace_core.study import registry
    from mace_core.study.variants import DATA_ROOT_ENV

    if args.data_root:
        os.environ[DATA_ROOT_ENV] = os.path.abspath(os.path.expanduser(args.data_root))
    for pair in plan(args.profile, args.params_dir, args.runs_dir, args.book_dir, args.notebooks_dir, args.only):
        if pair.is_summary:
            print(f"{pair.label:40s} {'summary':18s} {'executed' if pair.output.is_file() else 'not executed'}")
            continue
        trained = "trained" if registry.is_complete(pair.run_dir) else "not trained"
        print(f"{pair.label:40s} {pair.run_key:18s} {trained:12s} {'up to date' if is_fresh(pair) else 'to run'}")
    return 0


def cmd_data(args) -> int:
    import os

    from mace_core.study.runner import ensure_data
    from mace_core.study.variants import DATA_ROOT_ENV

    if args.data_root:
        os.environ[DATA_ROOT_ENV] = os.path.abspath(os.path.expanduser(args.data_root))
    print(f"dataset of profile {args.profile} ready at {ensure_data(args.profile, args.params_dir)}")
    return 0


def cmd_config(args) -> int:
    import os

    import yaml

    from mace_core.study.variants import DATA_ROOT_ENV, resolve

    if args.data_root:
        os.environ[DATA_ROOT_ENV] = os.path.abspath(os.path.expanduser(args.data_root))
    v = resolve(args.experiment, args.variant, args.profile, args.params_dir)
    layers = ", ".join(str(p) for p in v.layers)
    print(f"# {args.experiment}/{args.variant} on profile {args.profile}, from: {layers}")
    print(yaml.safe_dump(v.config.to_dict(), sort_keys=False), end="")
    return 0


def cmd_dry_run(args) -> int:
    from mace_core.study.dryrun import dry_run, format_table
    from mace_core.study.variants import resolve_path

    out = args.json or resolve_path("runs", args.params_dir) / "dry-run" / f"{args.profile}.json"
    report = dry_run(args.data_root, args.profile, args.regdb_root, args.steps, out, args.params_dir,
                     tuple(args.set or ()), args.work_dir, args.quick_check, progress=sys.stderr.isatty(),
                     warmup=args.warmup, llcm_root=args.llcm_root)
    print(format_table(report))
    print(f"report: {out}")
    return 0


def cmd_exec(args) -> int:
    from mace_core.errors import MaceError
    from mace_core.study.runner import execute_one
    from mace_core.study.slurm import read_manifest

    m = read_manifest(args.manifest)
    try:
        label = m["waves"][args.wave]["pairs"][args.index]
    except (IndexError, KeyError):
        raise MaceError(f"manifest {args.manifest} has no wave {args.wave} index {args.index}",
                        "use the indices of the array job that the manifest was written with") from None
    result = execute_one(label, m["profile"], m["params_dir"], m["runs_dir"], m["book_dir"], m["notebooks_dir"],
                         m.get("data_root"))
    if not result["ok"]:
        print(f"FAILED {label}: {result['error']}  notebook: {result['notebook']}", file=sys.stderr)
        return 1
    print(f"{label}: {'up to date' if result.get('skipped') else 'executed'} -> {result['notebook']}")
    return 0
