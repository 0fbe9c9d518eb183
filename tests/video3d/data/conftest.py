"""Shared helpers: tiny videos whose frame i shows the number i in big binary squares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

BITS = 9  # up to 512 frames
BLOCK = 32  # 32x32 squares survive lossy compression
WIDTH, HEIGHT = 4 * BLOCK, 3 * BLOCK


def pattern(i: int) -> np.ndarray:
    img = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for b in range(BITS):
        r, c = divmod(b, 4)
        img[r * BLOCK : (r + 1) * BLOCK, c * BLOCK : (c + 1) * BLOCK] = (
            235 if (i >> b) & 1 else 20
        )
    return img


def frame_id(img: np.ndarray) -> int:
    """Reads back the frame number from a full-size decoded frame."""
    i, m = 0, BLOCK // 4
    for b in range(BITS):
        r, c = divmod(b, 4)
        block = img[r * BLOCK + m : (r + 1) * BLOCK - m, c * BLOCK + m : (c + 1) * BLOCK - m]
        if block.mean() > 128:
            i |= 1 << b
    return i


FORMATS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    # name: (suffix, container, codec, options); long GOPs with B-frames, keyframes inside.
    "h264-mp4": (".mp4", "mp4", "libx264", {"x264-params": "keyint=40:min-keyint=40:scenecut=0"}),
    "mpeg4-avi": (".avi", "avi", "mpeg4", {"bf": "2", "g": "30"}),
    "vp9-webm": (".webm", "webm", "libvpx-vp9", {"g": "30", "deadline": "realtime"}),
}


def write_video(
    path: Path, kind: str = "h264-mp4", num_frames: int = 100, rate: int = 30
) -> Path:
    import av

    _, fmt, codec, options = FORMATS[kind]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern(i), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 100-frame video per format, plus a 25 fps MP4 (time base 1/12800)."""
    root = tmp_path_factory.mktemp("videos")
    out = {kind: write_video(root / f"v{FORMATS[kind][0]}", kind) for kind in FORMATS}
    out["h264-mp4-25fps"] = write_video(root / "v25.mp4", "h264-mp4", rate=25)
    return out


def _reencode(source: Path, path: Path, codec: str, options: dict[str, str]) -> Path:
    """Re-encodes a pattern video with other settings (its frames keep their numbers)."""
    import av

    with av.open(str(source)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def more_videos(videos, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One keyframe for the whole video with B-pyramids (H.264), and VP9 with hidden
    alt-ref frames (packets whose frames are never shown)."""
    root = tmp_path_factory.mktemp("more_videos")
    source = videos["h264-mp4"]
    return {
        "h264-mp4-one-gop": _reencode(
            source, root / "onegop.mp4", "libx264",
            {"x264-params": "keyint=250:scenecut=0:bframes=3:b-pyramid=normal"},
        ),
        "vp9-webm-altref": _reencode(
            source, root / "altref.webm", "libvpx-vp9",
            {"g": "30", "deadline": "good", "cpu-used": "8", "auto-alt-ref": "1",
             "lag-in-frames": "16"},
        ),
    }


@pytest.fixture(scope="session")
def all_videos(videos, more_videos) -> dict[str, Path]:
    return {**videos, **more_videos}


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "v.mp4", kind: str = "h264-mp4", num_frames: int = 100,
             rate: int = 30) -> Path:
        return write_video(tmp_path / name, kind, num_frames, rate)

    return make


@pytest.fixture
def read_ids() -> Callable[[object], list[int]]:
    def ids(clip: object) -> list[int]:
        array = np.asarray(clip)
        return [frame_id(f) for f in array]

    return ids
