from __future__ import annotations

import numpy as np
import pytest
import torch

from video3d.data.decoding import VideoReader
from video3d.data.transforms import (
    IMAGENET_MEAN,
    EvalTransform,
    TrainTransform,
    eval_crop_plans,
    finish_clip,
    flip_allowed,
    resize_uint8,
    train_crop_plan,
)


@pytest.mark.parametrize(("height", "width"), [(256, 340), (480, 640), (640, 360), (100, 100)])
def test_train_plan_in_source_coordinates(height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    short = min(height, width)
    flips = set()
    for _ in range(200):
        plan = train_crop_plan(height, width, rng)
        top, left, h, w = plan.box
        assert h == w
        assert top >= 0 and top + h <= height and left >= 0 and left + w <= width
        # the crop is 224 pixels of a video whose short side is in [256, 340]
        assert round(224 * short / 340) <= h <= round(224 * short / 256)
        assert plan.size == (224, 224)
        flips.add(plan.flip)
    assert flips == {True, False}


def test_train_plan_is_seeded_and_no_flip_when_disabled() -> None:
    a = [train_crop_plan(240, 320, np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(1)
    assert not any(train_crop_plan(240, 320, rng, flip=False).flip for _ in range(50))


def test_eval_plans_landscape_and_portrait() -> None:
    (centre,) = eval_crop_plans(240, 320, short_side=256, crop_size=224)
    assert centre.box == (15, 55, 210, 210)
    land = eval_crop_plans(256, 340, short_side=256, crop_size=256, num_crops=3)
    assert [p.box for p in land] == [(0, 0, 256, 256), (0, 42, 256, 256), (0, 84, 256, 256)]
    port = eval_crop_plans(340, 256, short_side=256, crop_size=256, num_crops=3)
    assert [p.box for p in port] == [(0, 0, 256, 256), (42, 0, 256, 256), (84, 0, 256, 256)]
    assert all(p.size == (256, 256) and not p.flip for p in land + port)


def test_train_transform_output_and_normalisation() -> None:
    value = round(IMAGENET_MEAN[0] * 255)
    clip = torch.full((4, 120, 160, 3), value, dtype=torch.uint8)
    out = TrainTransform(crop_size=64, short_side=(64, 90))(clip, np.random.default_rng(0))
    assert out.dtype == torch.float32
    assert tuple(out.shape) == (3, 4, 64, 64)
    assert out[0].abs().max() < 0.01  # red channel sits at the mean
    raw = TrainTransform(64, (64, 90), normalize=False)(clip, np.random.default_rng(0))
    assert raw.max() <= 1.0 and raw.min() >= 0.0


def test_flip_mirrors_left_right() -> None:
    clip = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    clip[:, :, :4] = 255
    out = finish_clip(clip, flip=True, mean=None, std=None)
    assert out[:, :, :, 4:].min() == 1.0 and out[:, :, :, :4].max() == 0.0


def test_eval_transform_three_crops_cover_left_centre_right() -> None:
    clip = torch.zeros(2, 64, 128, 3, dtype=torch.uint8)
    clip[:, :, :32] = 255  # bright left quarter
    views = EvalTransform(short_side=64, crop_size=64, num_crops=3, normalize=False)(clip)
    assert tuple(views.shape) == (3, 3, 2, 64, 64)
    left, centre, right = (v.mean().item() for v in views)
    assert left == pytest.approx(0.5, abs=0.02) and centre < 0.01 and right == 0.0


def test_resize_uint8_keeps_dtype_and_values() -> None:
    clip = torch.full((3, 40, 60, 3), 77, dtype=torch.uint8)
    out = resize_uint8(clip, (20, 30))
    assert out.dtype == torch.uint8 and tuple(out.shape) == (3, 20, 30, 3)
    assert int(out.min()) == int(out.max()) == 77


def test_fused_decode_path_matches_full_frame_path(videos) -> None:
    """Crop+resize inside the decoder gives the same clip as cropping decoded frames."""
    transform = TrainTransform(crop_size=32, short_side=(40, 60))
    with VideoReader(videos["h264-mp4"]) as reader:
        plan = transform.plan(reader.height, reader.width, np.random.default_rng(3))
        fused = transform.finish(reader.read(range(8), crop=plan.box, size=plan.size), plan)
        full = transform(reader.read(range(8)), np.random.default_rng(3))
    assert fused.shape == full.shape == (3, 8, 32, 32)
    assert (fused - full).abs().mean() < 0.1  # normalised units (~6 gray levels)


def test_flip_allowed() -> None:
    assert not flip_allowed("SSV2") and not flip_allowed("something-something-v1")
    assert flip_allowed("kinetics400")
    assert TrainTransform.for_dataset("ssv2", crop_size=112, short_side=(128, 160)).flip is False


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TrainTransform(crop_size=0), "crop_size must be a positive integer, got 0"),
        (lambda: TrainTransform(224, (200, 340)), "crop_size <= low <= high"),
        (lambda: TrainTransform(224, (300, 260)), "crop_size <= low <= high"),
        (lambda: TrainTransform(mean=(0.5, 0.5)), "mean and std need 3 values"),
        (lambda: EvalTransform(128, 224), "must not exceed short_side"),
        (lambda: EvalTransform(num_crops=2), "num_crops must be 1 or 3, got 2"),
    ],
)
def test_bad_transform_arguments(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_clip_input() -> None:
    with pytest.raises(ValueError, match=r"expected a uint8 clip \[T, H, W, 3\]"):
        TrainTransform(32, (32, 40))(torch.zeros(2, 40, 40, 3), np.random.default_rng(0))
