"""TorchCodecReader: the exact-frame tests of the PyAV reader, on torchcodec's CPU decoder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from video3d.data import (
    TorchCodecReader,
    UnsupportedContainerError,
    VideoDecodeError,
    VideoReader,
    torchcodec_status,
)

pytestmark = pytest.mark.skipif(
    torchcodec_status() is not None, reason=str(torchcodec_status())
)

KINDS = ["h264-mp4", "vp9-webm", "h264-mp4-25fps", "h264-mp4-one-gop", "vp9-webm-altref"]
REQUESTS = {
    "consecutive": list(range(37, 53)),
    "strided": list(range(3, 99, 6)),
    "uniform": [2, 3, 4, 5, 27, 28, 29, 30, 52, 53, 54, 55, 77, 78, 79, 80],
    "repeated": [5, 5, 5, 41, 41, 99, 99],
    "out_of_order": [99, 0, 58, 12, 40, 39, 41, 1],
    "first_and_last": [0, 99],
    "just_before_keyframe": [39],
}


HEIGHT, WIDTH = 96, 128  # the pattern videos of conftest.py


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_exact_frames_like_pyav(all_videos, read_ids, kind: str, request_name: str) -> None:
    indices = REQUESTS[request_name]
    with TorchCodecReader(all_videos[kind]) as reader:
        clip = reader.read(indices)
    assert clip.dtype == torch.uint8 and tuple(clip.shape) == (len(indices), HEIGHT, WIDTH, 3)
    assert read_ids(clip) == indices
    with VideoReader(all_videos[kind]) as pyav:
        assert (clip.int() - pyav.read(indices).int()).abs().max() <= 2


@pytest.mark.parametrize("kind", KINDS)
def test_every_frame_alone_and_reuse(all_videos, read_ids, kind: str) -> None:
    with VideoReader(all_videos[kind]) as pyav:
        fps = pyav.fps
    with TorchCodecReader(all_videos[kind]) as reader:
        assert reader.num_frames == 100 and abs(reader.fps - fps) < 0.01
        assert (reader.width, reader.height) == (WIDTH, HEIGHT)
        assert [read_ids(reader.read([i]))[0] for i in range(100)] == list(range(100))
        assert read_ids(reader.read(torch.tensor([8, 2]))) == [8, 2]


def test_crop_and_resize_keep_the_frames(videos, read_ids) -> None:
    with TorchCodecReader(videos["h264-mp4"], num_frames=100) as reader:
        full = reader.read([3, 60])
        crop = reader.read([3, 60], crop=(10, 20, 40, 60))
        small = reader.read([3, 60], crop=(0, 0, 96, 128), size=(48, 64))
    assert torch.equal(crop, full[:, 10:50, 20:80])
    assert tuple(small.shape) == (2, 48, 64, 3)
    big = torch.nn.functional.interpolate(
        small.permute(0, 3, 1, 2).float(), size=(96, 128), mode="nearest"
    ).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert read_ids(big) == [3, 60]


def test_avi_is_refused_not_misread(videos) -> None:
    # torchcodec numbers B-frame AVI frames one off; the reader must refuse such files.
    with pytest.raises(UnsupportedContainerError, match="MP4/MOV and Matroska/WebM"):
        TorchCodecReader(videos["mpeg4-avi"])


def test_bad_inputs(tmp_path: Path, videos) -> None:
    with pytest.raises(VideoDecodeError, match="no such file"):
        TorchCodecReader(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(VideoDecodeError, match="cannot open"):
        TorchCodecReader(junk)
    with pytest.raises(ValueError, match="threads"):
        TorchCodecReader(videos["h264-mp4"], threads=-1)
    with TorchCodecReader(videos["h264-mp4"]) as reader:
        with pytest.raises(ValueError, match=r"out of range .* 100 frames"):
            reader.read([100])
        with pytest.raises(ValueError, match="does not fit"):
            reader.read([0], crop=(0, 0, 97, 10))
        with pytest.raises(TypeError, match="not picklable"):
            pickle.dumps(reader)
    with pytest.raises(VideoDecodeError, match="closed"):
        reader.read([0])


def test_index_longer_than_the_stream_is_an_error(videos) -> None:
    with TorchCodecReader(videos["h264-mp4"], num_frames=120) as reader, pytest.raises(
        VideoDecodeError, match="torchcodec sees 100 frames"
    ):
        reader.read(np.arange(95, 110))


def _cuda_backends() -> list:
    import contextlib

    backends = [contextlib.nullcontext]
    with contextlib.suppress(ImportError):
        from torchcodec.decoders import set_cuda_backend

        backends.append(lambda: set_cuda_backend("beta"))
    return backends


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (NVDEC)")
@pytest.mark.parametrize("kind", ["h264-mp4", "vp9-webm", "h264-mp4-one-gop"])
def test_exact_frames_on_nvdec(all_videos, read_ids, kind: str) -> None:
    errors = []
    for backend in _cuda_backends():  # FFmpeg's CUDA decoder, else torchcodec's own NVDEC
        try:
            with backend(), TorchCodecReader(all_videos[kind], device="cuda") as reader:
                for indices in REQUESTS.values():
                    clip = reader.read(indices)
                    assert clip.device.type == "cuda"
                    assert read_ids(clip.cpu()) == indices
                crop = reader.read([3, 60], crop=(0, 0, 96, 128), size=(48, 64))
                assert crop.device.type == "cuda" and tuple(crop.shape) == (2, 48, 64, 3)
            return
        except (VideoDecodeError, RuntimeError) as exc:
            errors.append(str(exc)[:200])
    pytest.fail(f"no CUDA backend decoded {kind}: {errors}")
