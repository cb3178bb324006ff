"""The embedded default dataset: synthetic people in the exact SYSU-MM01 layout.

Why it looks the way it does (see the design note on calibration):

* identity lives in cues that survive the modality change — body proportions, garment layout
  (sleeves, trousers/shorts/skirt), stripe/check patterns, hats and bags — plus colour, which
  only the RGB cameras see;
* IR cameras (3, 6) render grey "heat" intensity. Near-infrared correlates with visible
  luminance, so a garment's IR value is ``coupling * luminance + (1 - coupling) * heat`` with a
  per-garment heat value; skin is bright. With ``coupling = 0`` the cross-modal task is not
  learnable in a CPU budget, hence the knob;
* every camera has its own background (``clutter`` sets how busy), illumination and tint, and each
  image gets scale/position/pose jitter (``jitter``) and a horizontal flip (viewpoint);
  IR images get sensor noise.

Everything is drawn from ``numpy.random.default_rng`` streams keyed on (seed, identity, camera,
image), so the files are byte-identical for a seed whatever the order or number of workers.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mace_core.errors import MaceError

RGB_CAMS = (1, 2, 4, 5)
IR_CAMS = (3, 6)
MARKER = "synthetic.json"  # written last: its presence means a complete dataset
FORMAT_VERSION = 1


def source_of(root) -> str | None:
    """Where a dataset folder's images come from, read from the data itself: ``"synthetic"`` when it
    holds the marker every synthesiser of this project writes last (the embedded SYSU-format set and
    ``mace data synth --like ...``), ``"real"`` for any other folder, None when there is no folder.
    The study labels its numbers with this, never with what a profile assumes."""
    root = Path(root)
    if (root / MARKER).is_file():
        return "synthetic"
    return "real" if root.is_dir() else None

# Part labels of the figure mask (0 = background).
SKIN, HAIR, TOP, BOTTOM, SHOES, HAT, BAG = 1, 2, 3, 4, 5, 6, 7
N_PARTS = 8

# Per camera: RGB tint (multiplies colour), illumination gain, background IR level.
_CAM_TINT = {1: (1.08, 1.0, 0.88), 2: (0.9, 0.97, 1.1), 4: (1.0, 1.0, 1.0), 5: (0.95, 1.06, 0.92)}
_CAM_GAIN = {1: 0.95, 2: 0.85, 3: 1.0, 4: 1.1, 5: 1.0, 6: 0.9}
_CAM_IR_BG = {3: 0.22, 6: 0.38}


@dataclass(frozen=True)
class Knobs:
    """Generator difficulty knobs (stored in the dataset's marker file)."""

    coupling: float = 0.85      # IR intensity share taken from visible luminance
    clutter: float = 0.2        # background busyness 0..1
    jitter: float = 1.0         # scale/position/pose jitter multiplier
    ir_noise: float = 0.04      # IR sensor noise std (intensity units)
    test_fraction: float = 0.25
    val_fraction: float = 0.1
    indoor_missing: float = 0.1  # share of test ids with no cam1/cam2 images (as in the real data)
    quality: int = 90            # JPEG quality


# ---------------------------------------------------------------------------------------------
# identities


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _random_colour(rng) -> np.ndarray:
    # HSV-like draw: varied hues, saturations and values so colour alone is informative.
    import colorsys

    h, s, v = rng.random(), rng.uniform(0.15, 0.9), rng.uniform(0.15, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _identity(seed: int, pid: int) -> dict:
    rng = np.random.default_rng([seed, 1, pid])
    colours = np.zeros((N_PARTS, 3))
    colours[SKIN] = np.array([0.95, 0.78, 0.62]) * rng.uniform(0.55, 1.0)
    colours[HAIR] = np.array([0.25, 0.18, 0.12]) * rng.uniform(0.3, 2.5)
    for part in (TOP, BOTTOM, SHOES, HAT, BAG):
        colours[part] = _random_colour(rng)
    second = {TOP: _random_colour(rng), BOTTOM: _random_colour(rng)}
    heat = rng.uniform(0.0, 1.0, N_PARTS)
    heat[SKIN] = 1.0
    return {
        "height": rng.uniform(0.74, 0.9),            # figure height / image height
        "head": rng.uniform(0.10, 0.14),             # head diameter / figure height
        "shoulder": rng.uniform(0.20, 0.30),         # widths / figure height
        "hip": rng.uniform(0.15, 0.22),
        "torso": rng.uniform(0.30, 0.38),            # torso length / figure height
        "leg_w": rng.uniform(0.06, 0.09),
        "long_sleeve": rng.random() < 0.5,
        "lower": rng.choice(["trousers", "shorts", "skirt"], p=[0.6, 0.2, 0.2]),
        "top_pattern": rng.choice(["plain", "hstripes", "vstripes", "checks"]),
        "bottom_pattern": rng.choice(["plain", "hstripes", "checks"], p=[0.6, 0.2, 0.2]),
        "period": rng.uniform(0.035, 0.08),          # pattern period / figure height
        "hat": rng.random() < 0.3,
        "bag": rng.choice(["none", "backpack", "shoulder"], p=[0.4, 0.3, 0.3]),
        "colours": colours,
        "second": second,
        "heat": heat,
    }


# ---------------------------------------------------------------------------------------------
# drawing


def _figure_mask(ident: dict, size, rng, jitter: float):
    """Part-label mask of one pose plus the figure's frame (top y, centre x, height)."""
    from PIL import Image, ImageDraw

    H, W = size
    fh = ident["height"] * H * (1 + jitter * rng.uniform(-0.12, 0.06))
    cx = W / 2 + jitter * rng.uniform(-0.12, 0.12) * W
    feet = H * (0.98 - jitter * rng.uniform(0.0, 0.06))
    top = feet - fh
    swing = jitter * rng.uniform(-1, 1)      # arm swing
    stride = jitter * rng.uniform(0, 1)      # leg spread
    u = fh  # unit length

    img = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(img)
    head_d = ident["head"] * u
    neck_y = top + head_d
    sh_y = neck_y + 0.02 * u
    hip_y = sh_y + ident["torso"] * u
    sw, hw, lw = ident["shoulder"] * u / 2, ident["hip"] * u / 2, ident["leg_w"] * u

    if ident["bag"] == "backpack":  # behind the torso: shows as a bulge on one side
        d.rounded_rectangle([cx - sw * 1.25, sh_y + 0.03 * u, cx + sw * 0.2, hip_y - 0.05 * u], radius=3, fill=BAG)
    # legs
    leg_top = hip_y - 0.02 * u
    for side in (-1, 1):
        x0 = cx + side * (hw - lw / 2) + side * stride * 0.04 * u
        d.polygon([(cx + side * 0.2 * lw, leg_top), (cx + side * hw, leg_top),
                   (x0 + side * lw / 2, feet - 0.04 * u), (x0 - side * lw / 2, feet - 0.04 * u)], fill=BOTTOM)
        d.rectangle([x0 - lw * 0.7, feet - 0.045 * u, x0 + lw * 0.7, feet], fill=SHOES)
    if ident["lower"] == "shorts":  # bare knees/shins
        knee = leg_top + 0.45 * (feet - leg_top)
        for side in (-1, 1):
            x0 = cx + side * (hw - lw / 2) + side * stride * 0.04 * u
            d.rectangle([x0 - lw * 0.45, knee, x0 + lw * 0.45, feet - 0.045 * u], fill=SKIN)
    elif ident["lower"] == "skirt":
        d.polygon([(cx - hw, leg_top), (cx + hw, leg_top), (cx + hw * 1.5, leg_top + 0.22 * u),
                   (cx - hw * 1.5, leg_top + 0.22 * u)], fill=BOTTOM)
        for side in (-1, 1):
            x0 = cx + side * (hw - lw / 2) + side * stride * 0.04 * u
            d.rectangle([x0 - lw * 0.4, leg_top + 0.22 * u, x0 + lw * 0.4, feet - 0.045 * u], fill=SKIN)
    # torso
    d.polygon([(cx - sw, sh_y), (cx + sw, sh_y), (cx + hw, hip_y), (cx - hw, hip_y)], fill=TOP)
    # arms: upper arm in the top's colour, forearm skin for short sleeves
    arm_w = 0.06 * u
    for side in (-1, 1):
        x_sh = cx + side * (sw - arm_w * 0.3)
        x_hand = x_sh + side * 0.03 * u + swing * side * 0.05 * u
        y_hand = sh_y + 0.36 * u
        y_elb = sh_y + 0.18 * u
        x_elb = (x_sh + x_hand) / 2
        d.line([(x_sh, sh_y + arm_w / 2), (x_elb, y_elb)], fill=TOP, width=max(1, int(arm_w)))
        d.line([(x_elb, y_elb), (x_hand, y_hand)], fill=TOP if ident["long_sleeve"] else SKIN,
               width=max(1, int(arm_w * 0.85)))
        d.ellipse([x_hand - arm_w * 0.5, y_hand - arm_w * 0.5, x_hand + arm_w * 0.5, y_hand + arm_w * 0.5], fill=SKIN)
    if ident["bag"] == "shoulder":
        d.line([(cx - sw * 0.8, sh_y), (cx + hw * 1.2, hip_y - 0.02 * u)], fill=BAG, width=max(1, int(0.015 * u)))
        d.rectangle([cx + hw * 0.9, hip_y - 0.08 * u, cx + hw * 1.7, hip_y + 0.04 * u], fill=BAG)
    # neck, head, hair, hat
    d.rectangle([cx - 0.025 * u, neck_y - 0.01 * u, cx + 0.025 * u, sh_y + 0.01 * u], fill=SKIN)
    d.ellipse([cx - head_d * 0.42, top, cx + head_d * 0.42, neck_y], fill=SKIN)
    d.chord([cx - head_d * 0.45, top - 0.01 * u, cx + head_d * 0.45, top + head_d * 0.7], 180, 360, fill=HAIR)
    if ident["hat"]:
        d.rectangle([cx - head_d * 0.55, top + head_d * 0.12, cx + head_d * 0.55, top + head_d * 0.24], fill=HAT)
        d.chord([cx - head_d * 0.45, top - 0.03 * u, cx + head_d * 0.45, top + head_d * 0.45], 180, 360, fill=HAT)
    return np.asarray(img), top, cx, fh


def _pattern(kind: str, yy, xx, period: float) -> np.ndarray:
    """1 where a pattern shows its second colour (coordinates in figure-height units)."""
    if kind == "hstripes":
        return (np.floor(yy / period) % 2).astype(bool)
    if kind == "vstripes":
        return (np.floor(xx / period) % 2).astype(bool)
    if kind == "checks":
        return ((np.floor(yy / period) + np.floor(xx / period)) % 2).astype(bool)
    return np.zeros(yy.shape, bool)


def _camera_background(seed: int, cam: int, size, clutter: float, ir: bool) -> np.ndarray:
    """A camera's fixed scene: wall/floor gradient plus clutter objects (HxWx3 floats)."""
    rng = np.random.default_rng([seed, 3, cam])
    H, W = size
    wall, floor = _random_colour(rng) * 0.6 + 0.25, _random_colour(rng) * 0.5 + 0.2
    horizon = int(H * rng.uniform(0.6, 0.8))
    ramp = np.linspace(0.85, 1.1, H)[:, None, None]
    bg = np.empty((H, W, 3))
    bg[:horizon], bg[horizon:] = wall, floor
    bg *= ramp
    for _ in range(8):  # furniture / foliage / doors: blended in proportion to clutter
        h, w = rng.integers(H // 10, H // 2), rng.integers(W // 8, W // 2)
        y, x = rng.integers(0, H - h), rng.integers(0, W - w)
        bg[y:y + h, x:x + w] = (1 - clutter) * bg[y:y + h, x:x + w] + clutter * _random_colour(rng)
    if ir:
        lum = _luminance(bg)
        bg = np.repeat((_CAM_IR_BG[cam] + 0.5 * (lum - lum.mean()))[..., None], 3, axis=2)
    return np.clip(bg, 0, 1)


def render(ident: dict, cam: int, background: np.ndarray, rng, knobs: Knobs) -> np.ndarray:
    """One uint8 HxWx3 image of an identity seen by camera ``cam``."""
    H, W = background.shape[:2]
    mask, top, cx, fh = _figure_mask(ident, (H, W), rng, knobs.jitter)
    ys, xs = np.mgrid[0:H, 0:W]
    yy, xx = (ys - top) / fh, (xs - cx) / fh
    colours = ident["colours"]
    ir = cam in IR_CAMS
    if ir:  # per-part grey level: coupled to visible luminance, rest is material heat
        values = knobs.coupling * _luminance(colours) + (1 - knobs.coupling) * ident["heat"]
        values[SKIN] = 0.92
        table = np.repeat(values[:, None], 3, axis=1)
        second = {p: np.full(3, knobs.coupling * _luminance(c) + (1 - knobs.coupling) * ident["heat"][p])
                  for p, c in ident["second"].items()}
    else:
        table, second = colours, ident["second"]
    fig = table[mask]
    for part, kind in ((TOP, ident["top_pattern"]), (BOTTOM, ident["bottom_pattern"])):
        sel = (mask == part) & _pattern(str(kind), yy, xx, ident["period"])
        fig[sel] = second[part]
    alpha = (mask > 0)[..., None].astype(float)
    if rng.random() < 0.5:  # viewpoint: the person faces the other way
        fig, alpha = fig[:, ::-1], alpha[:, ::-1]
    # background: the camera's scene, shifted a little, plus per-image brightness
    bg = np.roll(background, int(rng.integers(-W // 8, W // 8 + 1)), axis=1)
    gain = _CAM_GAIN[cam] * rng.uniform(0.85, 1.15)
    shade = np.linspace(1.05, 0.9, H)[:, None, None]
    img = (alpha * fig + (1 - alpha) * bg) * gain * shade
    if ir:
        img = img + rng.normal(0, knobs.ir_noise, (H, W, 1))
    else:
        img = img * np.asarray(_CAM_TINT[cam])
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# dataset


def _splits(ids: int, seed: int, knobs: Knobs):
    rng = np.random.default_rng([seed, 0])
    order = rng.permutation(np.arange(1, ids + 1))
    n_test = max(1, int(round(ids * knobs.test_fraction)))
    n_val = int(round(ids * knobs.val_fraction))
    if ids - n_test - n_val < 1:
        raise MaceError(f"--ids {ids} leaves no training identity", "use at least 4 identities")
    test = sorted(order[:n_test].tolist())
    val = sorted(order[n_test:n_test + n_val].tolist())
    train = sorted(order[n_test + n_val:].tolist())
    n_missing = min(n_test - 1, int(np.ceil(n_test * knobs.indoor_missing - 1e-9)))
    no_indoor = sorted(rng.choice(test, n_missing, replace=False).tolist()) if n_missing > 0 else []
    return train, val, test, no_indoor


def _write_identity(job) -> None:
    """Render one identity: ``plan`` lists (camera, folder relative to ``out``, file names), optionally
    with a fourth entry, the stream key of that folder's images (default: the camera; layouts that
    render several folders with one camera's look give each folder its own key)."""
    out, seed, pid, plan, size, knobs = job
    from PIL import Image

    ident = _identity(seed, pid)
    for cam, folder, names, *key in plan:
        stream = key[0] if key else cam
        bg = _camera_background(seed, cam, size, knobs.clutter, cam in IR_CAMS)
        folder = Path(out) / folder
        folder.mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names, start=1):
            rng = np.random.default_rng([seed, 2, pid, stream, k])  # keyed on the image, not the order
            image = Image.fromarray(render(ident, cam, bg, rng, knobs))
            if name.endswith(".jpg"):
                image.save(folder / name, quality=knobs.quality)
            else:
                image.save(folder / name)


def sysu_plan(pid: int, counts: dict[int, int]) -> list:
    """The SYSU-MM01 layout of one identity: ``camK/NNNN/NNNN.jpg`` for each camera with images."""
    return [(cam, f"cam{cam}/{pid:04d}", [f"{k:04d}.jpg" for k in range(1, n + 1)])
            for cam, n in sorted(counts.items()) if n > 0]


def write_tree(root: Path, params: dict, jobs: list, write_extras, workers: int | None, desc: str) -> Path:
    """Render ``jobs`` into a sibling temp folder, let ``write_extras(tmp)`` add the lists, write the
    marker (``params``) last and rename the folder into place. An existing tree with the same
    marker is reused; our own tree with other parameters is replaced; anything else is refused."""
    from tqdm.auto import tqdm

    marker = root / MARKER
    if root.exists():
        if marker.is_file():
            try:
                if json.loads(marker.read_text()) == params:
                    return root  # already generated with these parameters
            except json.JSONDecodeError:
                pass
        elif not root.is_dir() or any(root.iterdir()):
            raise MaceError(f"{str(root)!r} exists and is not a synthetic dataset written by `mace data synth`",
                            "pass an empty or new folder as --root")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        jobs = [(str(tmp), *job) for job in jobs]
        workers = max(1, workers or min(4, os.cpu_count() or 1))
        bar = tqdm(total=len(jobs), desc=desc, unit="id", leave=False, mininterval=1.0,
                   disable=None if len(jobs) >= 50 else True)  # None: only on a terminal
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for _ in pool.map(_write_identity, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers)))):
                    bar.update(1)
        else:
            for job in jobs:
                _write_identity(job)
                bar.update(1)
        bar.close()
        write_extras(tmp)
        (tmp / MARKER).write_text(json.dumps(params, indent=1) + "\n")
        old = None
        if root.exists():  # our own dataset with other parameters, or an empty folder
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            os.replace(root, old)
        os.replace(tmp, root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _validate(ids, images_per_cam, size, knobs: Knobs, flag: str = "--images-per-cam"):
    if not isinstance(ids, (int, np.integer)) or ids < 4 or ids > 9999:
        raise MaceError(f"--ids must be an integer in 4..9999, got {ids!r}", "pass e.g. --ids 200")
    if not isinstance(images_per_cam, (int, np.integer)) or images_per_cam < 1 or images_per_cam > 9999:
        raise MaceError(f"{flag} must be an integer in 1..9999, got {images_per_cam!r}",
                        f"pass e.g. {flag} 8")
    if len(size) != 2 or min(size) < 16:
        raise MaceError(f"--size must be HxW with both sides >= 16, got {size!r}", "pass e.g. --size 128x64")
    for name in ("coupling", "clutter", "test_fraction", "val_fraction", "indoor_missing"):
        v = getattr(knobs, name)
        if not 0 <= v <= 1:
            raise MaceError(f"synthetic knob {name}={v!r} is outside [0, 1]", f"pass {name} between 0 and 1")
    if knobs.jitter < 0 or knobs.ir_noise < 0:
        raise MaceError("synthetic knobs jitter and ir_noise must be >= 0", "pass non-negative values")


def generate(root, ids: int = 200, images_per_cam: int = 8, seed: int = 0, size=(128, 64),
             workers: int | None = None, ir_images_per_cam: int | None = None, **knobs) -> Path:
    """Write a synthetic SYSU-MM01 tree (cam1..cam6, exp/*.txt) under ``root``; return its path.

    ``images_per_cam`` images per identity per RGB camera, ``ir_images_per_cam`` per IR camera (None:
    the same number). Knobs: see :class:`Knobs`. The tree is built in a sibling temp folder and
    renamed into place, with ``synthetic.json`` (the parameters) inside: an existing dataset with
    the same parameters is reused, one with other parameters is replaced; any other non-empty
    ``root`` is refused (never overwrite someone's data).
    """
    try:
        k = Knobs(**knobs)
    except TypeError as exc:
        raise MaceError(f"unknown synthetic knob ({exc})", f"use only {', '.join(Knobs.__dataclass_fields__)}") from None
    size = tuple(int(s) for s in size)
    _validate(ids, images_per_cam, size, k)
    if ir_images_per_cam is not None:
        _validate(ids, ir_images_per_cam, size, k, flag="--ir-images-per-cam")
    root = Path(root).expanduser().resolve()
    params = {"format": FORMAT_VERSION, "ids": int(ids), "images_per_cam": int(images_per_cam),
              "seed": int(seed), "size": list(size), "knobs": asdict(k)}
    n_ir = int(images_per_cam if ir_images_per_cam is None else ir_images_per_cam)
    if n_ir != int(images_per_cam):  # only then: markers of the earlier parameters stay as they were
        params["ir_images_per_cam"] = n_ir
    train, val, test, no_indoor = _splits(int(ids), int(seed), k)
    jobs = []
    for pid in range(1, ids + 1):
        counts = {c: (n_ir if c in IR_CAMS else int(images_per_cam)) for c in (1, 2, 3, 4, 5, 6)
                  if not (pid in no_indoor and c in (1, 2))}
        jobs.append((int(seed), pid, sysu_plan(pid, counts), size, k))
    return write_tree(root, params, jobs, lambda tmp: write_sysu_splits(tmp, train, val, test), workers,
                      "rendering identities")


def write_sysu_splits(tmp: Path, train, val, test) -> None:
    (tmp / "exp").mkdir()
    for name, split in (("train", train), ("val", val), ("test", test)):
        (tmp / "exp" / f"{name}_id.txt").write_text(",".join(str(i) for i in split) + "\n")


def montage(root, out_png, n_ids: int = 4, seed: int = 0) -> Path:
    """A PNG grid: ``n_ids`` identities (rows, seeded pick among those in all six cameras) × cameras."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from mace_core.data import sysu

    tree = sysu.scan(root)
    full = sorted(set.intersection(*(set(tree[c]) for c in sysu.ALL_CAMS)))
    if not full:
        raise MaceError(f"no identity under {str(root)!r} appears in all six cameras", "generate a dataset first")
    rng = np.random.default_rng(seed)
    pids = sorted(rng.choice(full, min(n_ids, len(full)), replace=False).tolist())
    fig, axes = plt.subplots(len(pids), 6, figsize=(6 * 1.1, len(pids) * 2.0), squeeze=False)
    root = Path(root)
    for r, pid in enumerate(pids):
        for c, cam in enumerate(sysu.ALL_CAMS):
            name = tree[cam][pid][int(rng.integers(len(tree[cam][pid])))]
            ax = axes[r, c]
            ax.imshow(Image.open(root / f"cam{cam}" / f"{pid:04d}" / name).convert("RGB"))
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"cam{cam} ({'IR' if cam in IR_CAMS else 'RGB'})", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"id {pid}", fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, out)
    return out
