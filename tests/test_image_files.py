"""Image files as a photo library shows them: a table of files made here with Pillow, each read
as Pillow's own conversion of it (EXIF orientation applied, CMYK, palette, 1-bit and grey+alpha
converted, single frames read), or refused with a message that says why."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import mind_engine as me
from mind_engine.images import ImageError, MissingImageError, to_tensor

pytestmark = pytest.mark.usefixtures("one_thread")
ORIENTATION = 0x0112  # the EXIF tag


def _rgb(seed=0, h=40, w=56):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path, im, **kw):
    im.save(path, **kw)
    return path


def _rotated_jpeg(path):
    """A 56x40 picture stored sideways (40x56) with EXIF orientation 6: shown 56 wide, 40 high."""
    stored = Image.fromarray(_rgb()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return _save(path, stored, exif=exif, quality=95)


def _transparent_palette(path):
    im = Image.fromarray(_rgb()).convert("P")
    return _save(path, im, transparency=0)


def _frames(path, n, **kw):
    frames = [Image.fromarray(_rgb(i)) for i in range(n)]
    return _save(path, frames[0], save_all=n > 1, append_images=frames[1:], **kw)


def _pillow(path, mode="RGB"):
    """What Pillow itself shows for the file: EXIF-transposed and converted to ``mode``."""
    with Image.open(path) as im:
        return np.array(ImageOps.exif_transpose(im).convert(mode))


FILES = {  # name: (make(path), the array the file must read as, from its path)
    "cmyk.jpg": (lambda p: _save(p, Image.fromarray(_rgb()).convert("CMYK"), quality=95), _pillow),
    "exif6.jpg": (_rotated_jpeg, _pillow),
    "palette.png": (lambda p: _save(p, Image.fromarray(_rgb()).convert("P")), _pillow),
    "palette-transparent.png": (_transparent_palette, lambda p: _pillow(p, "RGBA")[..., :3]),
    "1bit.png": (lambda p: _save(p, Image.fromarray(_rgb()).convert("1")), lambda p: _pillow(p, "L")),
    "grey-alpha.png": (lambda p: _save(p, Image.fromarray(_rgb()).convert("LA")), lambda p: _pillow(p, "L")),
    "grey16.png": (lambda p: _save(p, Image.fromarray((_rgb()[..., 0].astype(np.uint16) * 257))),
                   lambda p: _rgb()[..., 0]),
    "single.gif": (lambda p: _frames(p, 1), _pillow),
    "single.tif": (lambda p: _frames(p, 1), lambda p: _rgb(0)),
    "rgba.webp": (lambda p: _save(p, Image.fromarray(_rgb()).convert("RGBA"), lossless=True), lambda p: _rgb(0)),
}


@pytest.mark.parametrize("name", list(FILES))
def test_files_read_as_pillow_shows_them(name, tmp_path):
    make, expected = FILES[name]
    path = make(tmp_path / name)
    assert torch.equal(to_tensor(path), to_tensor(expected(path)))


def test_cmyk_is_converted_not_read_as_its_planes(tmp_path):
    path = FILES["cmyk.jpg"][0](tmp_path / "cmyk.jpg")
    t = to_tensor(path)
    planes = to_tensor(np.array(Image.open(path))[..., :3])  # C, M, Y read as R, G, B: the old mistake
    assert (t - to_tensor(_rgb())).abs().mean() < 0.05 < (planes - to_tensor(_rgb())).abs().mean()


def test_a_rotated_phone_photo_matches_its_upright_copy(net, tmp_path):
    rotated = _rotated_jpeg(tmp_path / "rotated.jpg")
    upright = _save(tmp_path / "upright.jpg", Image.fromarray(_rgb()), quality=95)
    m = me.match(rotated, upright, stride=16, model=net)  # not refused as "differ in size"
    assert len(m) == 6 and to_tensor(rotated).shape == (3, 40, 56)


@pytest.mark.parametrize("make, error, message", [
    (lambda p: _frames(p / "anim.gif", 2, duration=100), ImageError, r"anim.gif holds 2 frames \(an animation"),
    (lambda p: _frames(p / "pages.tif", 3), ImageError, "pages.tif holds 3 frames"),
    (lambda p: p, ImageError, "is a folder, not an image file"),
    (lambda p: p / "none.png", MissingImageError, "none.png: no such file"),
    (lambda p: (p / "text.png").write_text("not an image") and p / "text.png", ImageError, "not an image file"),
], ids=["multi-frame GIF", "multi-page TIFF", "a directory", "missing", "not an image"])
def test_unusable_files_are_refused_saying_why(make, error, message, net, tmp_path):
    path = make(tmp_path)
    with pytest.raises(error, match=message):
        to_tensor(path)
    with pytest.raises(error, match=message):
        me.match(path, path, model=net)
