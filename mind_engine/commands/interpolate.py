"""``mind-engine interpolate IMG1 IMG3 --out mid.png``: the network's middle frame."""
from __future__ import annotations

from ..checks import check_writable
from ..cliargs import add_model_options, subcommand
from ..images import IMAGE_SUFFIXES, write_image
from .common import check_inputs, input_files, load, read


def add_parser(sub) -> None:
    i = subcommand(sub, "interpolate", "interpolate the middle frame")
    i.add_argument("img1", help="the first image file")
    i.add_argument("img3", help="the second image file")
    i.add_argument("--out", required=True, help=f"the middle frame's image file ({', '.join(IMAGE_SUFFIXES)})")
    add_model_options(i)


def run(a) -> int:
    from ..interpolate import interpolate

    check_inputs(a)
    check_writable(a.out, "--out", IMAGE_SUFFIXES)
    model = load(a.weights, a.device)
    mid = interpolate(read(a.img1), read(a.img3), model=model, device=a.device)
    write_image(a.out, mid, inputs=input_files(a), name="--out")
    print(f"wrote {a.out}")
    return 0
