"""The ``mind-engine`` command (also ``python -m mind_engine``).

    mind-engine match IMG1 IMG3 [--stride 4] [--radius R] [--top K] [--out matches.png]
                                [--json [out.json]] [--weights W] [--device D] [--tier T]
                                [--subpixel] [--fb]
    mind-engine match-pairs LIST --out DIR [--ray] [--workers N] ...   (mind_engine.batch.cli)
    mind-engine match-video VIDEO --gap K --out DIR [--ray] ...
    mind-engine interpolate IMG1 IMG3 --out mid.png [--weights W] [--device D]
    mind-engine export {onnx,tensorrt} ...   (mind_engine.backends.cli)
    mind-engine train ...                 (all arguments go to mind_engine.training)
    mind-engine bench {latency,accuracy,interpolation,throughput} ...   (runs bench/<name>.py of the repo)
    mind-engine demo [--out mind_demo] [--weights W]

Errors a user can cause (missing or unreadable files, bad checkpoints, bad options, devices that
are not there, output paths that cannot be written or that would overwrite an input or each
other) end with exit status 2 and one line ``mind-engine <command>: error: ...`` on stderr, not
a traceback, and are found before any network runs. Options are checked by the rules of the API
(``mind_engine.cliargs``). Ctrl-C ends with status 130, SIGTERM with 143, and one line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .backends import cli as export_cli
from .batch import cli as batch_cli
from .batch.signals import Terminated
from .checks import FIGURE_SUFFIXES, check_distinct, check_folder, check_writable
from .cliargs import add_model_options, check_options, levels, number, radius, subcommand
from .images import IMAGE_SUFFIXES, check_image_path, write_image

PROG = "mind-engine"
BENCHES = ("latency", "accuracy", "interpolation", "throughput")
DEMO_WIDTH = 256  # bench/accuracy.py's --moto-width default: the demo pair is the one it scores


class UserError(Exception):
    """A problem with what the user asked for, reported in one line."""


def _load(weights, device):
    from .weights import load_model

    try:
        return load_model(weights, device=device)
    except FileNotFoundError as e:
        raise UserError(str(e)) from e


def _check_inputs(a) -> None:
    """IMG1 and IMG3 are files, and the outputs (``--out``, ``--json``) can be written without
    overwriting them, the checkpoint or each other."""
    check_image_path(a.img1, "img1")
    check_image_path(a.img3, "img3")
    json_path = getattr(a, "json", None)
    check_distinct({"--out": a.out, "--json": None if json_path == "-" else json_path},
                   {"img1": a.img1, "img3": a.img3, "--weights": a.weights})


def _read(path) -> np.ndarray:
    from .images import to_tensor

    t = to_tensor(path, str(path))
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


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


def run_match(img1, img3, model, *, stride=4, radius=None, device=None, tier="auto",
              subpixel=False, fb=False, top=None, progress=None, levels=1):
    """Match two images (paths or arrays); returns (Matches sorted best first, flags or None, seconds)."""
    from .api import match, match_fb, match_subpixel
    from .evaluation.metrics import rank

    t = time.perf_counter()
    if subpixel:
        m = match_subpixel(img1, img3, stride=stride, radius=radius, model=model, device=device, tier=tier,
                           progress=progress, levels=levels)
    else:
        m = match(img1, img3, stride=stride, radius=radius, model=model, device=device, tier=tier,
                  progress=progress, levels=levels)
    flags = None
    if fb:
        m, flags = match_fb(img1, img3, radius=radius, model=model, device=device, tier=tier,
                            forward=m, subpixel=subpixel, levels=levels)
    secs = time.perf_counter() - t
    order = rank(m.score, flags)
    if top is not None:
        order = order[:top]
    return m[order], (flags[order] if flags is not None else None), secs


def _check_match_args(a) -> None:
    """The files and output paths of ``match``, before any network runs (the options are
    checked by ``cliargs.check_options``)."""
    _check_inputs(a)
    if a.out:
        check_writable(a.out, "--out", FIGURE_SUFFIXES)
        from .evaluation.figures import draw_matches  # noqa: F401  needs matplotlib: refuse before the slow part
    if a.json and a.json != "-":
        check_writable(a.json, "--json")


def cmd_match(a) -> int:
    _check_match_args(a)
    model = _load(a.weights, a.device)
    img1, img3 = _read(a.img1), _read(a.img3)
    m, flags, secs = run_match(img1, img3, model, stride=a.stride, radius=a.radius,
                               device=a.device, tier=a.tier, subpixel=a.subpixel, fb=a.fb, top=a.top,
                               progress=True, levels=a.levels)
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
               "radius": a.radius, "levels": a.levels, "top": a.top, "weights": a.weights or "default", "tier": a.tier,
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

    _check_inputs(a)
    check_writable(a.out, "--out", IMAGE_SUFFIXES)
    model = _load(a.weights, a.device)
    mid = interpolate(_read(a.img1), _read(a.img3), model=model, device=a.device)
    write_image(a.out, mid)
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

    out = check_folder(a.out, "--out")
    model = _load(a.weights, a.device)
    out.mkdir(parents=True, exist_ok=True)
    name, img1, img3 = demo_pair()
    print(f"demo pair: {name} ({img1.shape[1]}x{img1.shape[0]})")
    write_image(out / "input1.png", img1)
    write_image(out / "input3.png", img3)
    write_image(out / "interpolated.png", interpolate(img1, img3, model=model, device=a.device))
    m, _, secs = run_match(img1, img3, model, stride=a.stride, radius=a.radius, device=a.device)
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


def tier_names() -> list[str]:
    from .engine.tiers import tier_names as names

    return ["auto", *names()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="MIND image matching by inverting a frame-interpolation CNN.")
    sub = p.add_subparsers(dest="cmd", required=True)

    m = subcommand(sub, "match", "match two images")
    m.add_argument("img1", help="the first image file")
    m.add_argument("img3", help="the second image file")
    m.add_argument("--stride", type=number, default=4, help="query grid stride in pixels")
    m.add_argument("--radius", type=radius, default=None,
                   help="search radius around each query ('none': the whole image, the default)")
    m.add_argument("--levels", type=levels, default=1,
                   help="pyramid levels: 1 matches at one scale; K or 'auto' coarse to fine, for motion larger "
                        "than the model follows")
    m.add_argument("--top", type=number, default=None, help="keep only the K best matches (default: all)")
    m.add_argument("--out", default=None, help="draw the matches to this image file (default: no figure)")
    m.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="write the matches as JSON to PATH (no PATH or '-': to stdout, the summary to stderr; "
                        "default: no JSON)")
    m.add_argument("--tier", default="auto", choices=tier_names(),
                   help="engine tier (auto: the fastest exact one available)")
    m.add_argument("--subpixel", action="store_true", help="refine match points to sub-pixel (quadratic fit)")
    m.add_argument("--fb", action="store_true", help="flag matches that fail the forward-backward check")
    add_model_options(m)

    batch_cli.add_parsers(sub, tier_names())

    i = subcommand(sub, "interpolate", "interpolate the middle frame")
    i.add_argument("img1", help="the first image file")
    i.add_argument("img3", help="the second image file")
    i.add_argument("--out", required=True, help=f"the middle frame's image file ({', '.join(IMAGE_SUFFIXES)})")
    add_model_options(i)

    export_cli.add_parsers(sub)

    sub.add_parser("train", help="train a model (arguments go to mind_engine.training)", add_help=False)

    b = subcommand(sub, "bench", "run a benchmark script of the repository's bench/")
    b.add_argument("name", choices=BENCHES, help="which benchmark")

    d = subcommand(sub, "demo", "match a bundled real pair and write figures to ./mind_demo/")
    d.add_argument("--out", default="mind_demo", help="folder for the figures")
    d.add_argument("--stride", type=number, default=16, help="query grid stride in pixels")
    d.add_argument("--radius", type=radius, default=32, help="search radius around each query ('none': whole image)")
    add_model_options(d)
    return p


COMMANDS = {"match": cmd_match, "interpolate": cmd_interpolate, "demo": cmd_demo, "export": export_cli.cmd_export,
            "match-pairs": batch_cli.cmd_match_pairs, "match-video": batch_cli.cmd_match_video}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = f"{PROG} {argv[0]}" if argv and argv[0] in (*COMMANDS, "train", "bench") else PROG
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
        check_options(a)
        return COMMANDS[a.cmd](a)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: stop without a traceback, nothing half-written is kept open
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:  # SIGTERM during a batch job, whose manifest says so
        print(f"{prog}: terminated", file=sys.stderr)
        return 143
    except ImportError as e:  # figures, demo, baselines and export use the extras
        if (e.name or "").startswith("mind_engine"):
            raise  # a broken install of mind_engine itself, not a missing extra
        print(f"{prog}: error: this command needs {e.name or e}, which is not installed "
              f"(pip install 'mind-engine[dev]' installs every extra: opencv-python-headless, matplotlib, "
              f"scikit-image, scikit-video, imageio-ffmpeg, onnx, onnxruntime, onnxscript)", file=sys.stderr)
        return 2
    except (ValueError, OSError, MemoryError) as e:  # ImageError, CheckpointError, bad options, unreadable files
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
