"""The ``mind-engine`` command (also ``python -m mind_engine``).

    mind-engine match IMG1 IMG3 [--stride 4] [--radius R] [--top K] [--out matches.png]
                                [--json [out.json]] [--weights W] [--device D] [--tier T]
                                [--subpixel] [--fb]
    mind-engine match-pairs LIST --out DIR [--ray] [--workers N] ...   (mind_engine.batch.cli)
    mind-engine match-video VIDEO --gap K --out DIR [--ray] ...
    mind-engine interpolate IMG1 IMG3 --out mid.png [--weights W] [--device D]
    mind-engine train ...                 (all arguments go to mind_engine.training)
    mind-engine bench {latency,accuracy,interpolation,throughput} ...   (runs bench/<name>.py of the repo)
    mind-engine demo [--out mind_demo] [--weights W]

Errors a user can cause (missing or unreadable files, bad checkpoints, bad options, devices that
are not there, output paths that cannot be written) end with exit status 2 and one line
``mind-engine: error: ...`` on stderr, not a traceback, and are found before any network runs.
Ctrl-C ends with status 130 and one line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .batch import cli as batch_cli

PROG = "mind-engine"
BENCHES = ("latency", "accuracy", "interpolation", "throughput")
DEMO_WIDTH = 256  # bench/accuracy.py's --moto-width default: the demo pair is the one it scores


class UserError(Exception):
    """A problem with what the user asked for, reported in one line."""


def _load(weights, device):
    from .checks import check_device
    from .weights import load_model

    check_device(device, "--device")
    try:
        return load_model(weights, device=device)
    except FileNotFoundError as e:
        raise UserError(str(e)) from e


def _check_files(*paths):
    for p in paths:
        if not Path(p).is_file():
            raise UserError(f"{p}: no such file")


def _read(path) -> np.ndarray:
    from .images import to_tensor

    t = to_tensor(path, str(path))
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _write_image(path, arr) -> None:
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.asarray(arr))


# ----------------------------------------------------------------------------- match


def _match_record(m, flags=None) -> list[dict]:
    out = []
    for i in range(len(m)):
        r = {"query": [float(v) for v in m.query[i]], "p1": [float(v) for v in m.pts1[i]],
             "p3": [float(v) for v in m.pts3[i]], "score": float(m.score[i]),
             "score1": float(m.score1[i]), "score3": float(m.score3[i])}
        if flags is not None:
            r["fb_consistent"] = not bool(flags[i])
        out.append(r)
    return out


def run_match(img1, img3, *, stride=4, radius=None, weights=None, device=None, tier="auto",
              subpixel=False, fb=False, top=None, model=None, progress=None):
    """Match two images (paths or arrays); returns (Matches sorted best first, flags or None, seconds)."""
    from .api import match
    from .evaluation.metrics import rank
    from .engine.refine import match_fb, match_subpixel

    if top is not None and top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    model = model if model is not None else _load(weights, device)
    t = time.perf_counter()
    run = match_subpixel if subpixel else match
    m = run(img1, img3, stride=stride, radius=radius, model=model, device=device, tier=tier, progress=progress)
    flags = None
    if fb:
        m, flags = match_fb(img1, img3, radius=radius, model=model, device=device, tier=tier,
                            forward=m, subpixel=subpixel)
    secs = time.perf_counter() - t
    order = rank(m.score, flags)
    if top is not None:
        order = order[:top]
    return m[order], (flags[order] if flags is not None else None), secs


def _check_match_args(a) -> None:
    """Every option and output path of ``match``, before any network runs."""
    from .checks import IMAGE_SUFFIXES, check_device, check_radius, check_stride, check_writable

    _check_files(a.img1, a.img3)
    check_stride(a.stride)
    check_radius(a.radius)
    check_device(a.device, "--device")
    if a.top is not None and a.top < 1:
        raise UserError(f"--top must be at least 1, got {a.top}")
    if a.out:
        check_writable(a.out, "--out", IMAGE_SUFFIXES)
        from .evaluation.figures import draw_matches  # noqa: F401  needs matplotlib: refuse before the slow part
    if a.json and a.json != "-":
        check_writable(a.json, "--json")


def cmd_match(a) -> int:
    _check_match_args(a)
    model = _load(a.weights, a.device)
    img1, img3 = _read(a.img1), _read(a.img3)
    m, flags, secs = run_match(img1, img3, stride=a.stride, radius=a.radius, model=model,
                               device=a.device, tier=a.tier, subpixel=a.subpixel, fb=a.fb, top=a.top,
                               progress=True)
    h, w = img1.shape[:2]
    to_stdout = a.json == "-"
    say = (lambda *x: print(*x, file=sys.stderr)) if to_stdout else print  # keep stdout pure JSON
    say(f"{len(m)} matches ({w}x{h}, stride {a.stride}, radius {a.radius}) in {secs:.2f} s"
        + (f"; {int((~flags).sum())} forward-backward consistent" if flags is not None else ""))
    for i in range(min(5, len(m))):
        say(f"  q=({m.query[i][0]:.0f},{m.query[i][1]:.0f})  p1=({m.pts1[i][0]:.2f},{m.pts1[i][1]:.2f})"
            f"  p3=({m.pts3[i][0]:.2f},{m.pts3[i][1]:.2f})  score={m.score[i]:.2f}")
    if a.json:
        doc = {"img1": str(a.img1), "img3": str(a.img3), "width": w, "height": h, "stride": a.stride,
               "radius": a.radius, "top": a.top, "weights": a.weights or "default", "tier": a.tier,
               "subpixel": a.subpixel, "fb": a.fb, "seconds": secs, "n": len(m),
               "matches": _match_record(m, flags)}
        if to_stdout:
            print(json.dumps(doc, indent=1))
        else:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps(doc, indent=1))
            say(f"wrote {a.json}")
    if a.out:
        from .evaluation.figures import draw_matches

        draw_matches(img1, img3, m.pts1, m.pts3, a.out, score=m.score,
                     title=f"MIND: {len(m)} matches, best {min(150, len(m))} drawn")
        say(f"wrote {a.out}")
    return 0


# ----------------------------------------------------------------------------- interpolate, train


def cmd_interpolate(a) -> int:
    from .interpolate import interpolate

    _check_files(a.img1, a.img3)
    model = _load(a.weights, a.device)
    mid = interpolate(_read(a.img1), _read(a.img3), model=model, device=a.device)
    _write_image(a.out, mid)
    print(f"wrote {a.out}")
    return 0


def cmd_train(rest) -> int:
    from .training import main as train_main

    train_main(list(rest))
    return 0


# ----------------------------------------------------------------------------- bench


def find_bench(name: str) -> Path:
    """bench/<name>.py of a source checkout: next to the package, or under the working directory."""
    here = Path(__file__).resolve().parent.parent / "bench" / f"{name}.py"
    cwd = Path.cwd() / "bench" / f"{name}.py"
    for p in (here, cwd):
        if p.is_file():
            return p
    for p in (here, cwd):
        if p.parent.is_dir():
            raise UserError(f"{p} does not exist: this checkout has no {name} benchmark yet")
    raise UserError(f"bench/{name}.py not found: the benchmarks live in bench/ of the mind_engine "
                    f"source repository, which an installed wheel does not include; run this from a "
                    f"checkout (or `python bench/{name}.py` there). Looked in {here.parent} and {cwd.parent}")


def cmd_bench(name: str, rest) -> int:
    script = find_bench(name)
    return subprocess.call([sys.executable, str(script), *rest], cwd=str(Path.cwd()))


# ----------------------------------------------------------------------------- demo


def demo_pair():
    """The demo's pair: the Middlebury motorcycle stereo pair (bundled with scikit-image) at 256
    wide, whose true motion (disparity 2.7-20.7 px) is known, the pair bench/accuracy.py scores
    MIND, KLT and DIS on. Returns (name, img1, img3)."""
    from .evaluation.pairs import motorcycle

    p = motorcycle(DEMO_WIDTH)
    return f"motorcycle stereo (Middlebury 2014), {DEMO_WIDTH} wide", p.img1, p.img3


def cmd_demo(a) -> int:
    from .evaluation.figures import draw_matches, sensitivity_figure, spread_queries
    from .interpolate import interpolate

    model = _load(a.weights, a.device)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name, img1, img3 = demo_pair()
    print(f"demo pair: {name} ({img1.shape[1]}x{img1.shape[0]})")
    _write_image(out / "input1.png", img1)
    _write_image(out / "input3.png", img3)
    _write_image(out / "interpolated.png", interpolate(img1, img3, model=model, device=a.device))
    m, _, secs = run_match(img1, img3, stride=a.stride, radius=a.radius, model=model, device=a.device)
    print(f"{len(m)} matches in {secs:.1f} s (stride {a.stride}, radius {a.radius})")
    draw_matches(img1, img3, m.pts1, m.pts3, out / "matches.png", score=m.score,
                 title=f"MIND on {name}: best {min(150, len(m))} of {len(m)} matches")
    picks = spread_queries(m, 5)
    sensitivity_figure(model, img1, img3, picks, out / "fig4.png", device=a.device, radius=a.radius,
                       title=f"Sensitivity maps S = max_c |d out(q) / d I| of {len(picks)} queries, "
                             f"the best in each fifth of the image ({name})")
    (out / "matches.json").write_text(json.dumps({"pair": name, "stride": a.stride, "radius": a.radius,
                                                   "matches": _match_record(m)}, indent=1))
    for f in ("input1.png", "input3.png", "interpolated.png", "matches.png", "fig4.png", "matches.json"):
        print(f"wrote {out / f}")
    return 0


# ----------------------------------------------------------------------------- parser


def _radius(s):
    return None if s.lower() in ("none", "full") else int(s)


def tier_names() -> list[str]:
    from .engine.tiers import TIERS

    return ["auto", *TIERS]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="MIND image matching by inverting a frame-interpolation CNN.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--weights", default=None, help="checkpoint (.safetensors); default: the bundled model")
        sp.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available, else cpu)")

    m = sub.add_parser("match", help="match two images")
    m.add_argument("img1")
    m.add_argument("img3")
    m.add_argument("--stride", type=int, default=4, help="query grid stride in pixels (default 4)")
    m.add_argument("--radius", type=_radius, default=None, help="search radius around each query (default: whole image)")
    m.add_argument("--top", type=int, default=None, help="keep only the K best matches")
    m.add_argument("--out", default=None, help="draw the matches to this image file")
    m.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="write the matches as JSON to PATH (no PATH or '-': to stdout, the summary to stderr)")
    m.add_argument("--tier", default="auto", choices=tier_names(),
                   help="engine tier (default auto: the fastest exact one available)")
    m.add_argument("--subpixel", action="store_true", help="refine match points to sub-pixel (quadratic fit)")
    m.add_argument("--fb", action="store_true", help="flag matches that fail the forward-backward check")
    common(m)

    batch_cli.add_parsers(sub, common, _radius, tier_names())

    i = sub.add_parser("interpolate", help="interpolate the middle frame")
    i.add_argument("img1")
    i.add_argument("img3")
    i.add_argument("--out", required=True)
    common(i)

    sub.add_parser("train", help="train a model (arguments go to mind_engine.training)", add_help=False)

    b = sub.add_parser("bench", help="run a benchmark script of the repository's bench/")
    b.add_argument("name", choices=BENCHES)

    d = sub.add_parser("demo", help="match a bundled real pair and write figures to ./mind_demo/")
    d.add_argument("--out", default="mind_demo")
    d.add_argument("--stride", type=int, default=16)
    d.add_argument("--radius", type=_radius, default=32)
    common(d)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        # train and bench pass everything after their name through untouched
        if argv and argv[0] == "train":
            return cmd_train(argv[1:])
        if argv and argv[0] == "bench" and len(argv) > 1 and argv[1] in BENCHES:
            return cmd_bench(argv[1], argv[2:])
        try:
            a = parser.parse_args(argv)
        except SystemExit as e:  # argparse has printed usage or help: hand back its status
            return e.code or 0
        return {"match": cmd_match, "interpolate": cmd_interpolate, "demo": cmd_demo,
                "match-pairs": batch_cli.cmd_match_pairs, "match-video": batch_cli.cmd_match_video}[a.cmd](a)
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: stop without a traceback, nothing half-written is kept open
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except ImportError as e:  # figures, demo and baselines use the dev extras
        if (e.name or "").startswith("mind_engine"):
            raise  # a broken install of mind_engine itself, not a missing extra
        print(f"{PROG}: error: this command needs {e.name or e}, which is not installed "
              f"(pip install 'mind-engine[dev]' installs opencv-python-headless, matplotlib, "
              f"scikit-image, scikit-video, imageio-ffmpeg)", file=sys.stderr)
        return 2
    except (ValueError, OSError, MemoryError) as e:  # ImageError, CheckpointError, bad options, unreadable files
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
