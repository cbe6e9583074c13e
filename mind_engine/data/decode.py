"""Decoding a video file as a stream of frames, with errors in one line.

PyAV decodes (its errors are one line, and it notices a file cut short in mid-stream, which the
ffmpeg command line skips in silence); imageio-ffmpeg is the fallback where PyAV is not
installed, and of its errors, which carry ffmpeg's whole banner, only the last line is kept. An
error names the file and says what is wrong; the packages are named only when neither is there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

NEEDS = "decoding a video needs PyAV or imageio-ffmpeg, and neither is installed: pip install av"


def last_line(error: BaseException) -> str:
    """The last non-empty line of an error's message (ffmpeg's verdict, not its banner)."""
    lines = [s.strip() for s in str(error).splitlines() if s.strip()]
    return lines[-1] if lines else type(error).__name__


def decode_error(ffmpeg_error: BaseException, av_error: BaseException) -> str:
    """What is wrong, in a few words, when imageio-ffmpeg and PyAV both failed on a file."""
    if isinstance(ffmpeg_error, ImportError) and isinstance(av_error, ImportError):
        return NEEDS
    why = ffmpeg_error if isinstance(av_error, ImportError) else av_error
    return f"{getattr(why, 'strerror', None) or last_line(why)} (not a video, or a file cut short or damaged)"


def _refuse(path: Path, what: str, done: int | None) -> ValueError:
    where = "" if not done else f" after frame {done - 1}"
    hint = " (not a video, or a file cut short or damaged)" if not done else " (the file is cut short or damaged)"
    return ValueError(f"cannot decode {path}{where}: {what}{hint}")


def _pyav_frames(av, path: Path) -> Iterator[np.ndarray]:
    done = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"cannot decode {path}: it holds no video stream")
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
                done += 1
    except av.error.FFmpegError as e:
        raise _refuse(path, e.strerror or last_line(e), done) from None


def _ffmpeg_frames(path: Path) -> Iterator[np.ndarray]:
    import imageio_ffmpeg

    done = 0
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        w, h = next(reader)["size"]
        for buf in reader:
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            done += 1
    except (OSError, RuntimeError, StopIteration) as e:
        raise _refuse(path, last_line(e), done) from None


def video_frames(path) -> Iterator[np.ndarray]:
    """The frames of a video file, decoded one at a time, as uint8 (H, W, 3) RGB arrays.
    ValueError (one line, naming the file) where it cannot be decoded, at the frame where that
    shows; FileNotFoundError where there is no file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    try:
        import av
    except ImportError:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ValueError(f"cannot decode {path}: {NEEDS}") from None
        return _ffmpeg_frames(path)
    return _pyav_frames(av, path)


def frame_count(path) -> int | None:
    """The frames a video file's header announces, None where it announces none. Opens the file,
    so one that cannot be decoded is refused here (as by ``video_frames``), before any work."""
    path = Path(path)
    try:
        import av
    except ImportError:
        next(video_frames(path), None)  # imageio-ffmpeg reads the header with the first frame
        return None
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"cannot decode {path}: it holds no video stream")
            n = container.streams.video[0].frames
    except av.error.FFmpegError as e:
        raise _refuse(path, e.strerror or last_line(e), None) from None
    return int(n) if n else None
