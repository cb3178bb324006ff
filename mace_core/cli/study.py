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
    run.add_argument("--slurm-partition", default=None, help="#SBATCH --partition (default: the cluster's)")
    run.add_argument("--slurm-time", default="04:00:00", help="time limit per array task (default 04:00:00)")
    run.add_argument("--slurm-account", default=None, help="#SBATCH --account (many clusters require one)")
    run.add_argument("--slurm-qos", default=None, help="#SBATCH --qos")
    run.add_argument("--slurm-gpus", type=int, default=1, metavar="N",
                     help="GPUs per array task (default 1; 0 writes no gres line, for a CPU partition)")
    run.add_argument("--slurm-cpus", type=int, default=8, metavar="N", help="CPUs per array task (default 8)")
    run.add_argument("--slurm-mem", default=None, help="memory per array task, e.g. 32G (default: the cluster's)")
    run.add_argument("--slurm-constraint", default=None, help="#SBATCH --constraint, e.g. a100")
    run.add_argument("--slurm-max-tasks", type=int, default=None, metavar="N",
                     help="array tasks running at once (--array=0-K%%N; default: no limit)")
    run.add_argument("--slurm-extra", action="append", default=[], metavar="OPTION",
                     help="a further #SBATCH line, repeatable, e.g. --slurm-extra=--mail-type=END")
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
        from mace_core.study.slurm import SlurmOptions, write_slurm

        options = SlurmOptions(partition=args.slurm_partition, time=args.slurm_time, account=args.slurm_account,
                               qos=args.slurm_qos, gpus=args.slurm_gpus, cpus=args.slurm_cpus, mem=args.slurm_mem,
                               constraint=args.slurm_constraint, extra=tuple(args.slurm_extra),
                               max_tasks=args.slurm_max_tasks)
        written = write_slurm(args.profile, args.slurm_dir, args.params_dir, args.runs_dir, args.book_dir,
                              args.notebooks_dir, args.only, args.data_root, llcm_root=args.llcm_root,
                              options=options)
        arrays = ", ".join(f"{name} ({n} tasks)" for name, n in written.tasks.items() if name != "book.sbatch")
        print(f"wrote the Slurm job arrays: {arrays or 'nothing to run'}, then book.sbatch")
        if written.validated:
            print("checked with sbatch --test-only: accepted")
        else:
            print(f"the scripts were {written.note}", file=sys.stderr)
        print(f"submit with: bash {written.submit}")
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

    from mace_core.study import registry
    from mace_core.study.planning import is_fresh, plan
    from mace_core.study.slurm import read_failure
    from mace_core.study.variants import DATA_ROOT_ENV, find_params_dir, resolve_path

    if args.data_root:
        os.environ[DATA_ROOT_ENV] = os.path.abspath(os.path.expanduser(args.data_root))
    books = resolve_path(args.book_dir, find_params_dir(args.params_dir))

    def failed(label: str, done: bool) -> str:
        """A Slurm task's failure record (error and log), shown while the pair is not done."""
        record = None if done else read_failure(books, label)
        if record is None:
            return ""
        where = f"Slurm log: {record['log']}" if record.get("log") else f"notebook: {record.get('notebook')}"
        return f"  FAILED ({where}): {record.get('error')}"

    for pair in plan(args.profile, args.params_dir, args.runs_dir, args.book_dir, args.notebooks_dir, args.only):
        if pair.is_summary:
            done = pair.output.is_file()
            print(f"{pair.label:40s} {'summary':18s} {'executed' if done else 'not executed'}{failed(pair.label, done)}")
            continue
        trained = "trained" if registry.is_complete(pair.run_dir) else "not trained"
        fresh = is_fresh(pair)
        print(f"{pair.label:40s} {pair.run_key:18s} {trained:12s} {'up to date' if fresh else 'to run'}"
              f"{failed(pair.label, fresh)}")
        for rep in pair.replicates:
            note = failed(rep.label, registry.is_complete(rep.run_dir))
            if note:
                print(f"{rep.label:40s} {rep.run_key:18s} {'not trained':12s} {'to run'}{note}")
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
    from mace_core.study.slurm import execute_task

    result = execute_task(args.manifest, args.wave, args.index)
    label = result["label"]
    if not result["ok"]:
        print(f"FAILED {label}: {result['error']}  notebook: {result['notebook']}", file=sys.stderr)
        return 1
    print(f"{label}: {'up to date' if result.get('skipped') else 'executed'} -> {result['notebook']}")
    return 0
