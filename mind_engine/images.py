"""Turning what users pass (arrays, tensors, paths) into network input, and back.

Every rejection names the problem; what a photo library would show is what is matched:

- files are read with Pillow: the EXIF orientation is applied (``ImageOps.exif_transpose``);
  CMYK, palette, 1-bit, grey+alpha and other modes are converted by ``Image.convert`` to RGB
  (RGBA where there is transparency, the alpha then dropped); 8-bit grey, RGB and 16-bit grey are
  read as they are. A single-frame GIF or TIFF is read; files of several frames (animations,
  multi-page TIFFs) are refused, except MPO photos, whose first frame is the picture;
- arrays of any byte order and memory layout (big-endian, strided views, ``np.matrix``) are
  taken as plain native arrays; grey is repeated to RGB and alpha dropped, never rejected.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MIN_SIDE = 16  # smaller images carry too little context for a 32-aligned network
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".webp")  # read and written
AS_STORED = ("L", "RGB", "I;16", "I;16B", "I;16L")  # 8-bit grey and RGB, 16-bit grey: no conversion needed


class ImageError(ValueError):
    """An input image that mind_engine cannot use, with the reason."""


class MissingImageError(ImageError, FileNotFoundError):
    """An image path with no file behind it (both a ValueError, as every ImageError, and a
    FileNotFoundError)."""


def check_image_path(path, name: str = "image") -> Path:
    """A path with a file behind it (not a folder)."""
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{name} {path} is a folder, not an image file")
    if not p.is_file():
        raise MissingImageError(f"{path}: no such file")
    return p


def read_image(path) -> np.ndarray:
    """An image file as an HxW, HxWx3 or HxWx4 uint8 (or 16-bit grey) array, read as the module says."""
    from PIL import Image, ImageOps

    path = check_image_path(path)
    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1 and im.format != "MPO":
                raise ImageError(f"{path} holds {frames} frames (an animation or a multi-page file); "
                                 f"give a single image (or match its frames with match-video)")
            im = ImageOps.exif_transpose(im)
            if im.mode not in AS_STORED:
                has_alpha = "A" in im.getbands() or "transparency" in im.info
                im = im.convert("RGBA" if has_alpha else "RGB")
            return np.array(im)  # a writable copy (Pillow's buffer is read-only)
    except ImageError:
        raise
    except Exception as e:  # Pillow raises many types for undecodable files
        raise ImageError(f"{path} is not an image file Pillow can read ({e})") from e


def write_image(path, array: np.ndarray, **kwargs) -> Path:
    """An HxW[x3] uint8 array to an image file, of the type its suffix names (``IMAGE_SUFFIXES``),
    encoded in memory and written through ``safe_write.write_bytes`` (atomic; a full disk is one
    line; ``kwargs``: its ``inputs`` and ``name``)."""
    import io

    from PIL import Image

    from .safe_write import write_bytes

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported image file type {path.suffix or '(none)'!r}; use one of "
                         f"{list(IMAGE_SUFFIXES)}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format=fmt)
    return write_bytes(path, buf.getbuffer(), **kwargs)


def _channels_last(a: np.ndarray, name: str) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 -> HxWx3 (gray repeated, alpha dropped)."""
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ImageError(f"{name}: expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {a.shape}"
                         + (" (channels first? numpy images are HxWxC)" if a.ndim == 3 and a.shape[0] in (1, 3, 4) else ""))
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a[:, :, :3]


def to_tensor(img, name: str = "image") -> torch.Tensor:
    """Any accepted image -> (3, H, W) float32 tensor in [0, 1] (on the input's device for tensors).

    Accepted: numpy HxW[xC] uint8, uint16 or float in [0, 1], any byte order and layout; torch
    CxHxW or HxW likewise (C in 1, 3, 4); a path to an image file (read as the module says).
    Raises ImageError naming the problem otherwise.
    """
    if isinstance(img, (str, Path)):
        img = read_image(img)
        name = f"{name} ({img.shape})"
    if isinstance(img, torch.Tensor):
        t = img.detach()
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
            raise ImageError(f"{name}: expected a torch CxHxW tensor with C in 1, 3, 4, got shape "
                             f"{tuple(img.shape)}" + (" (a batch? pass one image)" if t.dim() == 4 else ""))
        t = t.expand(3, -1, -1) if t.shape[0] == 1 else t[:3]
        dtype_name, is_float = str(t.dtype).replace("torch.", ""), t.is_floating_point()
    elif isinstance(img, np.ndarray):
        img = np.asarray(img, dtype=img.dtype.newbyteorder("="))  # np.matrix and big-endian arrays as plain ones
        if img.dtype.kind not in "uif":  # bool, complex, object, strings: nothing torch can take as pixels
            raise ImageError(f"{name}: unsupported dtype {img.dtype.name}; use uint8, uint16 or float in [0, 1]")
        t = torch.from_numpy(np.require(_channels_last(img, name), requirements="CW")).permute(2, 0, 1)
        dtype_name, is_float = img.dtype.name, img.dtype.kind == "f"
    else:
        raise ImageError(f"{name}: expected a numpy array, a torch tensor or a path, got {type(img).__name__}")

    if dtype_name == "uint8":
        t = t.float() / 255.0
    elif dtype_name == "uint16":
        t = t.float() / 65535.0
    elif is_float:
        t = t.float()
    else:
        raise ImageError(f"{name}: unsupported dtype {dtype_name}; use uint8, uint16 or float in [0, 1]")

    h, w = t.shape[-2:]
    if h == 0 or w == 0:
        raise ImageError(f"{name} is empty ({h}x{w})")
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"{name} is {h}x{w}; mind_engine needs at least {MIN_SIDE} pixels on each side")
    if not torch.isfinite(t).all():
        raise ImageError(f"{name} contains NaN or inf")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageError(f"{name}: float values must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]"
                         + (" (0-255 floats? divide by 255)" if hi > 1.5 else ""))
    return t.clamp(0, 1).contiguous()


def image_pair(img1, img3, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as (3, H, W) float32 on one device, checked to have the same size."""
    t1, t3 = to_tensor(img1, "img1"), to_tensor(img3, "img3")
    if t1.shape != t3.shape:
        raise ImageError(f"img1 and img3 differ in size: {t1.shape[1]}x{t1.shape[2]} vs "
                         f"{t3.shape[1]}x{t3.shape[2]} (HxW)")
    device = torch.device(device) if device is not None else t1.device
    return t1.to(device), t3.to(device)


def pad_to_multiple(t: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N,C,H,W) at the bottom and right by edge replication to multiples of ``multiple``.

    Padding only on those sides keeps pixel coordinates unchanged; returns the original (H, W)
    so results can be cropped back to the caller's frame.
    """
    h, w = t.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        t = F.pad(t, (0, pw, 0, ph), mode="replicate")
    return t, (h, w)


def to_output_like(t: torch.Tensor, like):
    """(3,H,W) float in [0,1] -> the type, layout and dtype of the caller's image ``like``."""
    t = t.clamp(0, 1)
    if isinstance(like, (str, Path)):
        like = np.zeros((1, 1, 3), np.uint8)  # files come back as uint8 HxWx3 arrays
    if isinstance(like, torch.Tensor):
        if like.dtype == torch.uint8:
            return (t * 255).round().to(torch.uint8).to(like.device)
        return t.to(device=like.device, dtype=like.dtype if like.is_floating_point() else torch.float32)
    a = t.permute(1, 2, 0).cpu().numpy()
    if like.dtype == np.uint8:
        return (a * 255).round().astype(np.uint8)
    if like.dtype == np.uint16:
        return (a * 65535).round().astype(np.uint16)
    return a.astype(like.dtype)
