"""`mace data synth|montage|check`: the embedded dataset and the dataset validator."""
from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 128x64 (HxW), got {text!r}") from None
    return h, w


def _synth(args) -> int:
    import time

    from mace_core.data.synthetic import generate

    knobs = {k: getattr(args, k) for k in ("coupling", "clutter", "jitter") if getattr(args, k) is not None}
    start = time.perf_counter()
    if args.like:
        from mace_core.data.synthetic_like import generate_like

        size = args.size or ((128, 64) if args.like == "regdb" else (288, 144))
        root = generate_like(args.like, args.root, structure=args.structure, scale=args.scale, seed=args.seed,
                             size=size, workers=args.workers, **knobs)
        print(f"synthetic {args.like}-like dataset ready at {root} ({time.perf_counter() - start:.0f} s)")
        return 0
    from mace_core.errors import MaceError

    if args.structure is not None or args.scale != 1.0:
        raise MaceError("--structure and --scale shape a release-like set", "add --like sysu-mm01 (or regdb, llcm)")
    root = generate(args.root, ids=args.ids, images_per_cam=args.images_per_cam, seed=args.seed,
                    size=args.size or (128, 64), workers=args.workers, ir_images_per_cam=args.ir_images_per_cam,
                    **knobs)
    print(f"synthetic SYSU-MM01 dataset ready at {root}")
    return 0


def _montage(args) -> int:
    from mace_core.data.synthetic import montage

    print(montage(args.root, args.out, n_ids=args.ids, seed=args.seed))
    return 0


def _check(args) -> int:
    from mace_core.data.check import check

    decode = 50 if args.quick else ("all" if args.decode is None else args.decode)
    report = check(args.dataset, args.root, trial=args.trial, decode=decode, seed=args.seed, workers=args.workers)
    print("\n".join(report.lines()))
    return 1 if report.problems else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="generate, picture and validate datasets")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True

    s = sub.add_parser("synth", help="write the synthetic SYSU-MM01-format dataset")
    s.add_argument("--root", required=True, help="output folder (new, empty, or an earlier synth)")
    s.add_argument("--ids", type=int, default=200, help="number of identities (default 200)")
    s.add_argument("--images-per-cam", type=int, default=8, help="images per identity per camera (default 8)")
    s.add_argument("--ir-images-per-cam", type=int, default=None,
                   help="images per identity per IR camera (default: as --images-per-cam)")
    s.add_argument("--like", choices=("sysu-mm01", "regdb", "llcm"), default=None,
                   help="shape of a real release: its identities and per-camera image counts (ignores --ids)")
    s.add_argument("--structure", default=None, metavar="JSON",
                   help="with --like sysu-mm01: the evaluation's structure.json for the exact per-identity counts "
                        "(e.g. ../shared/sysu_mm01_eval/structure.json; default: the release's camera totals)")
    s.add_argument("--scale", type=float, default=1.0,
                   help="with --like: share of identities and images kept, ratios unchanged (default 1 = full size)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=_size, default=None,
                   help="image size HxW (default 128x64; --like sysu-mm01 or llcm 288x144, --like regdb 128x64)")
    s.add_argument("--coupling", type=float, help="IR share of visible luminance, 0..1 (default 0.85)")
    s.add_argument("--clutter", type=float, help="background clutter, 0..1 (default 0.2)")
    s.add_argument("--jitter", type=float, help="scale/position/pose jitter multiplier (default 1)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: up to 4; with --like all cores)")
    s.set_defaults(func=_synth)

    m = sub.add_parser("montage", help="PNG of a few identities across all six cameras")
    m.add_argument("--root", required=True)
    m.add_argument("--out", required=True, help="PNG file to write")
    m.add_argument("--ids", type=int, default=4, help="identities (rows) to show")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=_montage)

    c = sub.add_parser("check", help="count images/identities/splits and report inconsistencies")
    c.add_argument("--dataset", required=True, help="sysu, regdb or llcm")
    c.add_argument("--root", required=True)
    c.add_argument("--trial", type=int, default=1, help="RegDB trial 1..10 (default 1)")
    c.add_argument("--decode", type=int, default=None,
                   help="decode only a seeded sample of this many images (0 = counts only; default: every image)")
    c.add_argument("--quick", action="store_true", help="decode a sample of 50 images instead of every image")
    c.add_argument("--workers", type=int, default=None, help="decoding threads (default: all cores)")
    c.add_argument("--seed", type=int, default=0, help="seed of the decoded sample")
    c.set_defaults(func=_check)

