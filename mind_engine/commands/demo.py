"""``mind-engine demo``: match a bundled real pair with known motion and write its figures."""
from __future__ import annotations

from ..checks import check_folder
from ..cliargs import add_match_options, add_model_options, subcommand
from ..images import write_image
from ..safe_write import write_json
from .common import load, match_record, run_match, settings_text

DEMO_WIDTH = 256  # bench/accuracy.py's --moto-width default: the demo pair is the one it scores
FILES = ("input1.png", "input3.png", "interpolated.png", "matches.png", "fig4.png", "matches.json")


def add_parser(sub) -> None:
    d = subcommand(sub, "demo", "match a bundled real pair and write figures to ./mind_demo/")
    d.add_argument("--out", default="mind_demo", help="folder for the figures")
    add_match_options(d)
    add_model_options(d)


def demo_pair():
    """The demo's pair: the Middlebury motorcycle stereo pair (bundled with scikit-image) at 256
    wide, whose true motion (disparity 2.7-20.7 px) is known, the pair bench/accuracy.py scores
    MIND, KLT and DIS on. Returns (name, img1, img3)."""
    from ..evaluation.pairs import motorcycle

    p = motorcycle(DEMO_WIDTH)
    return f"motorcycle stereo (Middlebury 2014), {DEMO_WIDTH} wide", p.img1, p.img3


def run(a) -> int:
    from ..evaluation.figures import draw_matches, sensitivity_figure, spread_queries
    from ..interpolate import interpolate

    out = check_folder(a.out, "--out")
    model = load(a.weights, a.device)
    out.mkdir(parents=True, exist_ok=True)
    name, img1, img3 = demo_pair()
    print(f"demo pair: {name} ({img1.shape[1]}x{img1.shape[0]})")
    write_image(out / "input1.png", img1)
    write_image(out / "input3.png", img3)
    print("interpolating the middle frame...", flush=True)
    write_image(out / "interpolated.png", interpolate(img1, img3, model=model, device=a.device))
    m, _, secs = run_match(img1, img3, model, stride=a.stride, radius=a.radius, device=a.device, levels=a.levels,
                           refine=a.refine, progress=True)  # the plan line, then progress on stderr (lines off a terminal)
    settings = settings_text(a.stride, a.radius, a.levels, "auto", a.weights, img1.shape[:2], a.refine)
    print(f"{len(m)} matches in {secs:.1f} s ({settings})")
    draw_matches(img1, img3, m.pts1, m.pts3, out / "matches.png", score=m.score, flag=~m.consistent,
                 title=f"MIND on {name}: best {min(150, len(m))} of {len(m)} matches\n{settings}")
    picks = spread_queries(m, 5)
    print(f"drawing the figures (the sensitivity maps of {len(picks)} queries)...", flush=True)
    sensitivity_figure(model, img1, img3, picks, out / "fig4.png", device=a.device, radius=a.radius,
                       title=f"Sensitivity maps S = max_c |d out(q) / d I| (one scale) of {len(picks)} queries, "
                             f"the best in each fifth of the image ({name})")
    write_json(out / "matches.json", {"pair": name, "stride": a.stride, "radius": a.radius, "levels": a.levels,
                                      "refine": a.refine, "matches": match_record(m)})
    for f in FILES:
        print(f"wrote {out / f}")
    return 0
