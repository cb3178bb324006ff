"""`mace eval`: evaluate a trained checkpoint under the SYSU-MM01, RegDB or LLCM protocol."""
from __future__ import annotations

from pathlib import Path


def _eval(args) -> int:
    import torch

    from mace_core.engine.checkpoint import load_for_eval
    from mace_core.engine.device import eval_amp_dtype, resolve_device
    from mace_core.engine.evaluate import evaluate_regdb_model, evaluate_sysu_model
    from mace_core.engine.retrieval import DIRECTIONS, check_direction
    from mace_core.errors import MaceError
    from mace_core.rerank import rerank_settings
    from mace_core.utils.atomic import atomic_write_json

    ckpt = Path(args.checkpoint).expanduser()
    if not ckpt.is_file():
        raise MaceError(f"checkpoint {str(ckpt)!r} does not exist", "pass --checkpoint RUN_DIR/checkpoints/last.pt")
    if args.gallery == "official" and not args.perm_file:
        raise MaceError("--gallery official needs --perm-file", "pass --perm-file PATH/rand_perm_cam.mat")
    if args.dataset:   # settings checked before the checkpoint is loaded
        check_direction(args.dataset, args.direction)
    rerank = rerank_settings(args.rerank, args.rerank_k1, args.rerank_k2, args.rerank_lambda)
    device = resolve_device(args.device)
    meta: dict = {}
    model, cfg = load_for_eval(ckpt, device, meta)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)  # as the inputs (and as in training)
    dataset = args.dataset or cfg.data.dataset
    root = args.root or cfg.data.root
    if dataset not in DIRECTIONS:
        raise MaceError(f"--dataset {dataset} is not known", f"use one of {', '.join(DIRECTIONS)}")
    direction = check_direction(dataset, args.direction)   # None: the dataset's standard direction
    if dataset != "sysu":
        ignored = [flag for flag, value in (("--multi-query", args.multi_query), ("--gallery", args.gallery != "agw"),
                                            ("--mode", args.mode != "all"), ("--shots", args.shots != 1))
                   if value]
        if ignored:
            raise MaceError(f"{', '.join(ignored)} apply to SYSU-MM01 only, not to --dataset {dataset}",
                            "drop them (RegDB: pick the trial with --trial and --direction; LLCM evaluates both directions)")
    size = (cfg.data.height, cfg.data.width)
    common = {"distance": args.distance, "flip": args.flip, "occlusion": args.occlusion,
              "occlusion_fill": args.occlusion_fill, "occlusion_seed": args.occlusion_seed,
              "cache_dir": args.cache_dir, "batch_size": args.batch_size, "device": device,
              "direction": direction, "rerank": rerank,
              # loaded and computed as the run's own evaluations were (see mace_core.engine.train.evaluate)
              "workers": cfg.data.workers, "pin_memory": cfg.data.pin_memory, "amp": eval_amp_dtype(cfg, device),
              "memory_format": torch.channels_last if cfg.train.channels_last else torch.contiguous_format}
    if dataset == "sysu":
        result = evaluate_sysu_model(model, root, size, mode=args.mode, gallery=args.gallery,
                                     perm_file=args.perm_file, shots=args.shots, trials=args.trials,
                                     multi_query=args.multi_query, fusion=args.fusion, **common)
        name = f"sysu-{args.mode}-{args.gallery}-{args.shots}shot"
        if direction != DIRECTIONS["sysu"][0]:
            name += f"-{direction}"
        if args.multi_query:
            name += f"-mq{args.multi_query}-{args.fusion}"
    elif dataset == "llcm":
        from mace_core.engine.evaluate import evaluate_llcm_model

        result = evaluate_llcm_model(model, root, size, trials=args.trials, vis2ir=args.vis2ir, **common)
        name = "llcm-both" + ("-deen" if args.vis2ir == "deen" else "")
    else:
        trial = args.trial if args.trial is not None else cfg.data.trial
        result = evaluate_regdb_model(model, root, size, trial=trial, **common)
        name = f"regdb-{direction}-trial{trial}"
    if args.occlusion:
        name += f"-occ-{args.occlusion}-{args.occlusion_fill}"
    if rerank:   # file name and table say it: re-ranked numbers are not comparable with plain ones
        name += "-reranked"
    for res in (result.ir2vis, result.vis2ir) if dataset == "llcm" else (result,):
        res.protocol.update(checkpoint=str(ckpt), model_selection=meta["model_selection"],
                            checkpoint_epoch=meta["epoch"], data_source=cfg.data.source)
    print(result.table() if dataset == "llcm" else result.table(name))
    print(f"model selection: {meta['model_selection']} (epoch {meta['epoch']}); data: {cfg.data.source}")
    out = Path(args.out) if args.out else _default_out(ckpt, name)
    atomic_write_json(out, result.to_dict())
    print(f"wrote {out}")
    return 0


def _default_out(ckpt: Path, name: str) -> Path:
    """RUN_DIR/eval/<protocol>-<checkpoint>.json for a run's checkpoint, else beside the checkpoint."""
    base = ckpt.parent.parent / "eval" if ckpt.parent.name == "checkpoints" else ckpt.parent
    return base / f"{name}-{ckpt.stem}.json"


def register(subparsers) -> None:
    from mace_core.engine.retrieval import FUSIONS
    from mace_core.metrics import DISTANCES
    from mace_core.occlusion import DEFAULT_FILL, FILLS, KINDS

    p = subparsers.add_parser("eval", help="evaluate a checkpoint (CMC, mAP, mINP over gallery trials)",
                              description="Evaluate a trained checkpoint. Prints R1/R5/R10/R20/mAP/mINP as "
                                          "mean ± std over trials (percent) and writes the full result as JSON.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by `mace train`")
    p.add_argument("--dataset", choices=("sysu", "regdb", "llcm"), default=None,
                   help="default: the dataset the checkpoint was trained on")
    p.add_argument("--root", default=None, help="dataset root folder (default: the checkpoint's data.root)")
    p.add_argument("--mode", choices=("all", "indoor"), default="all", help="SYSU search mode")
    p.add_argument("--gallery", choices=("agw", "official"), default="agw",
                   help="SYSU gallery picks: agw (AGW reference code's picks, comparable with papers) or official (rand_perm_cam.mat)")
    p.add_argument("--perm-file", default=None, help="rand_perm_cam.mat for --gallery official")
    p.add_argument("--shots", type=int, choices=(1, 10), default=1, help="gallery images per identity and camera")
    p.add_argument("--trials", type=int, default=10, help="SYSU / LLCM gallery trials (0..N-1)")
    p.add_argument("--trial", type=int, default=None, help="RegDB trial (default: the checkpoint's)")
    p.add_argument("--direction", default=None,
                   help="search direction: SYSU ir2rgb (standard) or rgb2ir (non-standard reverse); "
                        "RegDB v2t (default) or t2v. Default: the dataset's standard one")
    p.add_argument("--vis2ir", choices=("symmetric", "deen"), default="symmetric",
                   help="LLCM VIS->IR: symmetric (VIS queries, sampled NIR gallery) or deen (what DEEN's "
                        "test.py computes: sampled NIR probes against every VIS image; methods page)")
    p.add_argument("--distance", choices=DISTANCES, default="cosine")
    p.add_argument("--flip", action="store_true", help="average features with the horizontally flipped image")
    p.add_argument("--occlusion", choices=KINDS, default=None, help="occlude the queries at test time")
    p.add_argument("--occlusion-fill", choices=FILLS, default=DEFAULT_FILL)
    p.add_argument("--occlusion-seed", type=int, default=0)
    p.add_argument("--multi-query", type=int, default=None, metavar="N", help="fuse pools of N queries")
    p.add_argument("--fusion", choices=FUSIONS, default="avg")
    p.add_argument("--rerank", action="store_true",
                   help="k-reciprocal re-ranking (Zhong et al. 2017); the results are labelled re-ranked")
    p.add_argument("--rerank-k1", type=int, default=20)
    p.add_argument("--rerank-k2", type=int, default=6)
    p.add_argument("--rerank-lambda", type=float, default=0.3)
    p.add_argument("--cache-dir", default=None, help="folder for the resized image cache")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="JSON with the full result (per trial, mean, std); "
                                               "default RUN_DIR/eval/<protocol>-<checkpoint>.json")
    p.set_defaults(func=_eval)
