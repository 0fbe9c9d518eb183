"""Normalisation and flips on the batch's device (tested on the CPU)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import video3d.data.device_transforms as device_transforms
from video3d.data import TrainTransform, VideoClipDataset, VideoEntry
from video3d.data.device_transforms import TrainCrop, normalize_clips, random_flips
from video3d.data.transforms import finish_clip


def _clips(seed: int = 0, batch: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 5, 12, 10, 3), generator=gen, dtype=torch.uint8)


def test_same_numbers_as_the_cpu_path() -> None:
    clips = _clips()
    flips = torch.tensor([True, False, True, False])
    out = normalize_clips(clips, flip=flips)
    assert out.shape == (4, 3, 5, 12, 10) and out.dtype == torch.float32
    for k in range(4):
        assert torch.equal(out[k], finish_clip(clips[k], flip=bool(flips[k])))
    plain = normalize_clips(clips, mean=None, std=None)
    assert torch.equal(plain[1], finish_clip(clips[1], mean=None, std=None))


def test_flip_forms_single_clip_dtype_and_layout() -> None:
    clips = _clips(1)
    assert torch.equal(normalize_clips(clips, flip=True), normalize_clips(clips.flip(3)))
    assert torch.equal(normalize_clips(clips, flip=[False] * 4), normalize_clips(clips))
    assert torch.equal(normalize_clips(clips[2]), normalize_clips(clips)[2])
    half = normalize_clips(clips, dtype=torch.bfloat16, memory_format=torch.channels_last_3d)
    assert half.dtype == torch.bfloat16
    assert half.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(half.float(), normalize_clips(clips), atol=0.02)


def test_flips_keep_frame_order_and_mirror_columns() -> None:
    clips = torch.zeros(1, 4, 2, 3, 3, dtype=torch.uint8)
    for t in range(4):
        clips[0, t, :, 0] = t  # frame t: its left column holds t
    out = normalize_clips(clips, flip=True, mean=None, std=None) * 255
    assert out[0, 0, :, 0, 2].round().tolist() == [0, 1, 2, 3]  # right column now
    assert out[0, 0, :, 0, 0].round().tolist() == [0, 0, 0, 0]


def test_random_flips_are_seeded() -> None:
    a = random_flips(64, generator=torch.Generator().manual_seed(5))
    b = random_flips(64, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.bool and 10 < int(a.sum()) < 54
    assert not random_flips(8, p=0.0).any() and random_flips(8, p=1.0).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"clips": torch.zeros(2, 3, 4, 4, 3)}, "expected uint8 clips"),
     ({"clips": torch.zeros(2, 3, 4, 4, dtype=torch.uint8)}, "expected uint8 clips"),
     ({"flip": [True, False]}, "flip has 2 values for 4 clips"),
     ({"mean": None}, "give both mean and std"),
     ({"std": (0.2, 0.0, 0.2)}, "std > 0")],
)
def test_bad_inputs(kwargs: dict, message: str) -> None:
    args = {"clips": _clips(), **kwargs}
    with pytest.raises(ValueError, match=message):
        normalize_clips(args.pop("clips"), **args)
    with pytest.raises(ValueError, match="p must be in"):
        random_flips(2, p=1.5)


def test_loader_ships_uint8_crops_that_normalise_to_the_cpu_transform(videos) -> None:
    entries = [VideoEntry(str(videos[k]), 0, 100) for k in ("h264-mp4", "vp9-webm")]
    cpu = VideoClipDataset(entries, clip_len=8, seed=1,
                           transform=TrainTransform(48, (64, 80), flip=False))
    crops = VideoClipDataset(entries, clip_len=8, seed=1, transform=TrainCrop(48, (64, 80)))
    for i in range(len(entries)):
        shipped, label = crops[i]
        assert shipped.dtype == torch.uint8 and tuple(shipped.shape) == (8, 48, 48, 3)
        assert torch.equal(normalize_clips(shipped), cpu[i][0]) and label == cpu[i][1]
    batch = torch.stack([crops[i][0] for i in range(2)])
    assert batch.element_size() * batch.nelement() * 4 == (
        normalize_clips(batch).element_size() * normalize_clips(batch).nelement()
    )


def test_docstring_example() -> None:
    assert doctest.testmod(device_transforms).failed == 0
    assert np.isfinite(normalize_clips(_clips()).numpy()).all()
