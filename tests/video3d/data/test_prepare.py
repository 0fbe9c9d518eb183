"""video3d data prepare: re-encoded videos keep every frame's number; the index follows."""

from __future__ import annotations

import doctest
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import video3d.data.prepare as prepare_module
from video3d.cli import main
from video3d.data import VideoEntry, VideoReader, read_video_list, write_video_list
from video3d.data.prepare import decode_cost, prepare_dataset, prepare_video, target_size

KINDS = ["h264-mp4", "mpeg4-avi", "vp9-webm", "h264-mp4-25fps"]


def _index(root: Path, videos: dict[str, Path]) -> Path:
    index = root / "index"
    index.mkdir()
    (index / "classes.txt").write_text("a\nb\n", encoding="utf-8")
    train = [VideoEntry(str(videos[k]), i % 2, 100) for i, k in enumerate(KINDS[:3])]
    write_video_list(index / "train.txt", train)
    write_video_list(index / "test.txt", [VideoEntry(str(videos[KINDS[3]]), 1, 100)])
    return index


def _all_ids(path: str, read_ids, num_frames: int = 100) -> list[int]:
    with VideoReader(path, num_frames=num_frames) as reader:  # the dataset's way in
        return read_ids(reader.read(range(num_frames), size=(96, 128)))


def test_prepared_dataset_keeps_frames_and_updates_the_index(tmp_path, videos, read_ids):
    index = _index(tmp_path, videos)
    report = prepare_dataset(index, tmp_path / "out", short_side=64, keyint=8)
    assert report.num_encoded == 4 and not report.kept and report.bytes_out > 0
    out = read_video_list(tmp_path / "out" / "train.txt")
    test = read_video_list(tmp_path / "out" / "test.txt")
    assert out.classes == ["a", "b"]
    old = [e for name in ("train.txt", "test.txt") for e in read_video_list(index / name).entries]
    for before, after in zip(old, out.entries + test.entries):
        assert after.label == before.label and after.num_frames == 100
        assert Path(after.path).parent == tmp_path / "out" / "videos"
        assert _all_ids(after.path, read_ids) == list(range(100))
        with VideoReader(after.path) as reader:
            assert (reader.width, reader.height) == (84, 64)
            assert reader._keyframe_indices().tolist() == list(range(0, 100, 8))
            with VideoReader(before.path) as source:
                assert Fraction(reader.fps).limit_denominator(1000) == Fraction(
                    source.fps).limit_denominator(1000)
    again = prepare_dataset(index, tmp_path / "out", short_side=64, keyint=8)
    assert (again.num_encoded, again.num_reused) == (0, 4)


def test_never_enlarges_and_even_sides() -> None:
    assert target_size(128, 96, 288) == (128, 96)
    assert target_size(1920, 1080, 256) == (454, 256)
    assert target_size(101, 77, 50) == (66, 50)
    assert target_size(101, 77, 288) == (100, 76)
    assert doctest.testmod(prepare_module).failed == 0


def test_variable_frame_rate_video_is_kept_as_it_is(tmp_path: Path, videos) -> None:
    import av

    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k, pts in enumerate([0, 1, 2, 4, 5, 6, 8, 9, 10, 12]):  # every 4th frame missing
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * k, np.uint8))
            frame.pts, frame.time_base = pts, Fraction(1, 30)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(Exception, match="not a constant frame rate"):
        prepare_video(path, tmp_path / "o.mp4", short_side=32)
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.mp4.part").exists()
    index = tmp_path / "index"
    index.mkdir()
    write_video_list(index / "train.txt", [VideoEntry(str(path), 0, 10),
                                           VideoEntry(str(videos["h264-mp4"]), 1, 100)])
    report = prepare_dataset(index, tmp_path / "out", short_side=64, keyint=8, workers=2)
    assert [p for p, _ in report.kept] == [str(path)] and report.num_encoded == 1
    entries = read_video_list(tmp_path / "out" / "train.txt").entries
    assert entries[0].path == str(path) and entries[0].num_frames == 10


def test_bad_input(tmp_path: Path, videos) -> None:
    with pytest.raises(FileNotFoundError, match="no train.txt"):
        prepare_dataset(tmp_path, tmp_path / "out")
    index = _index(tmp_path, videos)
    with pytest.raises(ValueError, match="out_dir must differ"):
        prepare_dataset(index, index)
    with pytest.raises(ValueError, match="keyint must be a positive integer, got 0"):
        prepare_dataset(index, tmp_path / "o", keyint=0)
    with pytest.raises(ValueError, match="entries is empty"):
        decode_cost([])


def test_cli_prepare_and_measure(tmp_path: Path, videos, capsys) -> None:
    index = _index(tmp_path, videos)
    assert main(["data", "prepare", str(index), "--out", str(tmp_path / "p"),
                 "--short-side", "64", "--keyint", "4", "--measure", "3"]) == 0
    out = capsys.readouterr().out
    assert "4 re-encoded" in out and "index written to" in out
    assert out.count("CPU ms per clip") == 2
    assert main(["data", "prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "q")]) == 2
    assert "has no train.txt" in capsys.readouterr().err
    assert main(["data", "prepare", str(index), "--out", str(tmp_path / "q"),
                 "--keyint", "0"]) == 2
    assert "--keyint >= 1" in capsys.readouterr().err


_PREPARE = """
import sys
from pathlib import Path
from video3d.data.prepare import prepare_video
source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir()
for video in sorted(source.glob("*.mp4")):
    prepare_video(video, target / video.name, short_side=48, keyint=8)
"""


def test_prepared_bytes_do_not_depend_on_the_process(tmp_path) -> None:
    """Two runs under other heap contents (glibc's ``MALLOC_PERTURB_``) write the same bytes.
    With x264's mbtree on, half of these noisy videos came out different (its AVX-512 code
    reads memory it never wrote; only CPUs with AVX-512 show it)."""
    import os
    import subprocess
    import sys

    from video3d.data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "src", num_classes=4, videos_per_class=3, frames=64,
                           size=64, seed=0)
    outputs = []
    for perturb in ("85", "170"):
        target = tmp_path / f"out-{perturb}"
        env = {**os.environ, "MALLOC_PERTURB_": perturb}
        done = subprocess.run([sys.executable, "-c", _PREPARE, str(tmp_path / "src" / "videos"),
                               str(target)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append({v.name: v.read_bytes() for v in sorted(target.glob("*.mp4"))})
    assert len(outputs[0]) == 12
    differ = [name for name in outputs[0] if outputs[0][name] != outputs[1][name]]
    assert not differ, f"other bytes under another heap: {differ}"
