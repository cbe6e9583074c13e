"""A short clip made on the spot, for training where no video can be fetched (bench/device_run.sh):
a window panning smoothly across each of skimage's bundled still images, written as PNG frames.

    python bench/pan_clip.py OUT_DIR [--frames 40] [--size 320x192]

One folder of frames per image (``mind_engine.data.sources.load_frame_folder`` reads them);
the camera path is a slow random walk of at most a few pixels per frame, so consecutive
triplets carry real (rigid) motion.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage.transform import resize

from mind_engine.data.sources import still_image
from mind_engine.images import write_image

IMAGES = ("astronaut", "chelsea", "coffee", "rocket")


def pan(img: np.ndarray, frames: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """``frames`` crops of (w, h) = ``size`` whose corner moves by a smooth random walk."""
    w, h = size
    scale = max(1.0, 1.5 * max(h / img.shape[0], w / img.shape[1]))
    img = resize(img, (int(img.shape[0] * scale), int(img.shape[1] * scale)), anti_aliasing=True)
    rng = np.random.default_rng(seed)
    velocity = rng.uniform(-2, 2, 2)
    pos = np.array([(img.shape[1] - w) / 2, (img.shape[0] - h) / 2])
    out = []
    for _ in range(frames):
        velocity = np.clip(velocity + rng.normal(0, 0.3, 2), -3, 3)
        pos = np.clip(pos + velocity, 0, [img.shape[1] - w, img.shape[0] - h])
        x, y = (int(round(v)) for v in pos)
        out.append((img[y:y + h, x:x + w] * 255).round().astype(np.uint8))
    return out


def main(argv=None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--size", default="320x192", help="WxH of the frames")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    folders = []
    for k, name in enumerate(IMAGES):
        folder = Path(args.out) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(pan(still_image(name), args.frames, size, seed=k)):
            write_image(folder / f"{i:04d}.png", frame)
        folders.append(folder)
    print(" ".join(str(f) for f in folders))
    return folders


if __name__ == "__main__":
    main()
