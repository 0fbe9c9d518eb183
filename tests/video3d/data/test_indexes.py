from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from video3d.data.errors import IndexFormatError, UnknownClassError
from video3d.data.indexes import (
    DATASET_LAYOUTS,
    VideoEntry,
    build_index,
    read_dataset_layout,
    read_hmdb51,
    read_kinetics_csv,
    read_ssv2,
    read_ucf101,
    read_video_list,
    split_train_val,
    write_video_list,
)

# ------------------------------------------------------------------------ Kinetics
K_HEADER = "label,youtube_id,time_start,time_end,split"


def _kinetics(tmp_path: Path, body: str, header: str = K_HEADER) -> Path:
    path = tmp_path / "train.csv"
    path.write_text(header + "\n" + body)
    return path


def test_kinetics_csv(tmp_path: Path) -> None:
    csv_path = _kinetics(tmp_path, "riding a bike,abc,14,24,train\n"
                                   '"air drumming",x-Y_9,0,10,train\nabseiling,zz,5.0,15,train\n')
    index = read_kinetics_csv(csv_path, tmp_path / "videos")
    assert index.classes == ["abseiling", "air drumming", "riding a bike"]
    assert [Path(e.path).name for e in index.entries] == [
        "abc_000014_000024.mp4", "x-Y_9_000000_000010.mp4", "zz_000005_000015.mp4"]
    assert [e.label for e in index.entries] == [2, 1, 0]
    by_class = read_kinetics_csv(csv_path, tmp_path, layout="by_class", ext=".webm")
    assert by_class.entries[0].path == str(tmp_path / "riding a bike" / "abc_000014_000024.webm")


def test_kinetics_600_extra_column_and_given_classes(tmp_path: Path) -> None:
    csv_path = _kinetics(tmp_path, "b,id1,1,11,val,0\n",
                         header="label,youtube_id,time_start,time_end,split,is_cc")
    index = read_kinetics_csv(csv_path, tmp_path, classes=["a", "b"])
    assert index.entries[0].label == 1 and index.classes == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        ("a,id,1,11,train\nc,id2,2,12,train\n", UnknownClassError,
         r"train\.csv:3: unknown class 'c'"),
        ("a,id,1,11,train\na,id2,2\n", IndexFormatError, r"train\.csv:3: expected 5 fields"),
        ("a,id,one,11,train\n", IndexFormatError, r"train\.csv:2: time_start must be a number"),
    ],
)
def test_kinetics_bad_lines(tmp_path: Path, body: str, error, message: str) -> None:
    with pytest.raises(error, match=message):
        read_kinetics_csv(_kinetics(tmp_path, body), tmp_path, classes=["a", "b"])


def test_kinetics_bad_header(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError, match=r"header lacks columns \['time_end'\]"):
        read_kinetics_csv(_kinetics(tmp_path, "", header="label,youtube_id,time_start"), tmp_path)


# ------------------------------------------------------------------------ UCF101
def _ucf(tmp_path: Path, train: str, test: str = "") -> Path:
    folder = tmp_path / "ucfTrainTestlist"
    folder.mkdir()
    (folder / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    (folder / "trainlist01.txt").write_text(train)
    (folder / "testlist01.txt").write_text(test)
    return folder


def test_ucf101(tmp_path: Path) -> None:
    folder = _ucf(
        tmp_path,
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        "HandstandPushups/v_HandStandPushups_g08_c01.avi 2\n\nYoYo/v_YoYo_g25_c05.avi 3\n",
        "YoYo/v_YoYo_g01_c01.avi\nApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n",
    )
    train = read_ucf101(folder, tmp_path / "UCF-101")
    assert train.classes == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    assert [e.label for e in train.entries] == [0, 1, 2]
    assert train.entries[2].path == str(tmp_path / "UCF-101" / "YoYo" / "v_YoYo_g25_c05.avi")
    test = read_ucf101(folder, tmp_path, subset="test")
    assert [e.label for e in test.entries] == [2, 0]


@pytest.mark.parametrize(
    ("line", "error", "message"),
    [
        ("YoYo/v_YoYo_g25_c05.avi 1", IndexFormatError, r"label 1 .*disagrees"),
        ("YoYo/v_YoYo_g25_c05.avi 9", IndexFormatError, r"label must be in 1\.\.3"),
        ("YoYo/v_YoYo_g25_c05.avi x", IndexFormatError, r"label must be an int"),
        ("Juggling/v_J_g01_c01.avi 1", UnknownClassError, r"unknown class"),
        ("v_YoYo_g25_c05.avi 3", IndexFormatError, r"expected 'Class/video"),
    ],
)
def test_ucf101_bad_lines(tmp_path: Path, line: str, error, message: str) -> None:
    folder = _ucf(tmp_path, "YoYo/v_YoYo_g01_c01.avi 3\n" + line + "\n")
    with pytest.raises(error, match=r"trainlist01\.txt:2: " + message):
        read_ucf101(folder, tmp_path)


def test_ucf101_missing_list(tmp_path: Path) -> None:
    folder = _ucf(tmp_path, "")
    with pytest.raises(FileNotFoundError, match="trainlist02.txt"):
        read_ucf101(folder, tmp_path, split=2)
    with pytest.raises(ValueError, match="split must be 1, 2 or 3, got 4"):
        read_ucf101(folder, tmp_path, split=4)


# ------------------------------------------------------------------------ HMDB51
def test_hmdb51(tmp_path: Path) -> None:
    folder = tmp_path / "splits"
    folder.mkdir()
    (folder / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    (folder / "cartwheel_test_split1.txt").write_text("d.avi 2\ne.avi 1\n")
    (folder / "cartwheel_test_split2.txt").write_text("d.avi 1\ne.avi 2\n")
    train = read_hmdb51(folder, tmp_path / "hmdb")
    assert train.classes == ["brush_hair", "cartwheel"]
    assert [(Path(e.path).name, e.label) for e in train.entries] == [("a.avi", 0), ("e.avi", 1)]
    assert train.entries[0].path == str(tmp_path / "hmdb" / "brush_hair" / "a.avi")
    test = read_hmdb51(folder, tmp_path, subset="test")
    assert [Path(e.path).name for e in test.entries] == ["b.avi", "d.avi"]
    assert [Path(e.path).name for e in read_hmdb51(folder, tmp_path, split=2).entries] == ["d.avi"]


@pytest.mark.parametrize(("line", "message"), [("a.avi 3", "tag must be 0, 1 or 2, got 3"),
                                               ("a.avi", "expected 'video tag'")])
def test_hmdb51_bad_lines(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "run_test_split1.txt").write_text("ok.avi 1\n" + line + "\n")
    with pytest.raises(IndexFormatError, match=r"run_test_split1\.txt:2: " + message):
        read_hmdb51(tmp_path, tmp_path)


# ------------------------------------------------------------------------ SS-V2
def test_ssv2(tmp_path: Path) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"Holding something next to something": "1",
                                  "Approaching something with your camera": "0"}))
    train = tmp_path / "train.json"
    train.write_text(json.dumps([
        {"id": "78687", "label": "holding potato next to vicks vaporub bottle",
         "template": "Holding [something] next to [something]", "placeholders": ["potato"]},
        {"id": "42326", "label": "approaching a cup", "template":
         "Approaching [something] with your camera", "placeholders": ["cup"]},
    ]))
    index = read_ssv2(labels, train, tmp_path / "20bn")
    assert index.classes == ["Approaching something with your camera",
                             "Holding something next to something"]
    assert [(Path(e.path).name, e.label) for e in index.entries] == [("78687.webm", 1),
                                                                     ("42326.webm", 0)]


@pytest.mark.parametrize(
    ("entries", "error", "message"),
    [
        ([{"id": "1", "template": "Holding [something]"}], UnknownClassError,
         r"train\.json:1: unknown class 'Holding something'"),
        ([{"id": "1", "template": "Approaching [x]"}, {"id": "2"}], IndexFormatError,
         r"train\.json:2: entry lacks 'id' or 'template'"),
    ],
)
def test_ssv2_bad_entries(tmp_path: Path, entries, error, message: str) -> None:
    (tmp_path / "labels.json").write_text(json.dumps({"Approaching x": "0"}))
    (tmp_path / "train.json").write_text(json.dumps(entries))
    with pytest.raises(error, match=message):
        read_ssv2(tmp_path / "labels.json", tmp_path / "train.json", tmp_path)


def test_ssv2_bad_json(tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match=r"labels\.json:1: not valid JSON"):
        read_ssv2(tmp_path / "labels.json", tmp_path / "labels.json", tmp_path)


# ------------------------------------------------------------------------ plain list
# ------------------------------------------------------------------------ dataset layouts
def _layout(root: Path, layout: str, *, with_test: bool = True) -> tuple[Path, Path]:
    """A small copy of ``layout``'s annotation files, as the dataset ships them, and its
    video folders: ``(videos, annotations)`` (reading a layout opens no video)."""
    videos, ann = root / "videos", root / "annotations"
    ann.mkdir(parents=True)
    if layout == "kinetics":
        (ann / "train.csv").write_text(
            f"{K_HEADER}\nriding a bike,abc,14,24,train\nabseiling,zz,5,15,train\n")
        (videos / "train").mkdir(parents=True)
        if with_test:
            (ann / "validate.csv").write_text(f"{K_HEADER}\nriding a bike,q1,0,10,validate\n")
            (videos / "val").mkdir()
    elif layout == "ucf101":
        (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
        (ann / "trainlist02.txt").write_text(
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\n")
        (ann / "testlist02.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
        (ann / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n")
    elif layout == "hmdb51":
        (ann / "brush_hair_test_split2.txt").write_text("b1.avi 1 \nb2.avi 2 \nb3.avi 0 \n")
        (ann / "cartwheel_test_split2.txt").write_text("c1.avi 1 \nc2.avi 0 \n")
        (ann / "cartwheel_test_split1.txt").write_text("c2.avi 1 \n")
    else:  # ssv2
        (ann / "labels.json").write_text(json.dumps(
            {"Approaching something with your camera": "0", "Closing something": "1"}))
        (ann / "train.json").write_text(json.dumps([
            {"id": "78687", "label": "closing a book", "template": "Closing [something]",
             "placeholders": ["a book"]},
            {"id": "42326", "label": "approaching a cup with your camera",
             "template": "Approaching [something] with your camera",
             "placeholders": ["a cup"]}]))
        if with_test:
            (ann / "validation.json").write_text(json.dumps([
                {"id": "74225", "label": "closing a box", "template": "Closing [something]",
                 "placeholders": ["a box"]}]))
    return videos, ann


LAYOUTS = {  # layout: (classes, train (relative path, label), test (relative path, label))
    "kinetics": (["abseiling", "riding a bike"],
                 [("train/abc_000014_000024.mp4", 1), ("train/zz_000005_000015.mp4", 0)],
                 [("val/q1_000000_000010.mp4", 1)]),
    "ucf101": (["ApplyEyeMakeup", "Archery"],
               [("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0),
                ("Archery/v_Archery_g08_c01.avi", 1)],
               [("Archery/v_Archery_g01_c01.avi", 1)]),
    "hmdb51": (["brush_hair", "cartwheel"], [("brush_hair/b1.avi", 0), ("cartwheel/c1.avi", 1)],
               [("brush_hair/b2.avi", 0)]),
    "ssv2": (["Approaching something with your camera", "Closing something"],
             [("78687.webm", 1), ("42326.webm", 0)], [("74225.webm", 1)]),
}


@pytest.mark.parametrize("layout", DATASET_LAYOUTS)
def test_dataset_layouts_read_each_datasets_files(tmp_path: Path, layout: str) -> None:
    assert set(DATASET_LAYOUTS) == set(LAYOUTS)
    videos, ann = _layout(tmp_path, layout)
    train, test = read_dataset_layout(layout, videos, ann, split=2)  # type: ignore[arg-type]
    classes, want_train, want_test = LAYOUTS[layout]
    assert train.classes == classes
    assert [(e.path, e.label) for e in train.entries] == [
        (str(videos / rel), label) for rel, label in want_train]
    assert test is not None and test.classes == classes
    assert [(e.path, e.label) for e in test.entries] == [
        (str(videos / rel), label) for rel, label in want_test]


@pytest.mark.parametrize("layout", ["kinetics", "ssv2"])
def test_dataset_layouts_without_a_test_file(tmp_path: Path, layout: str) -> None:
    videos, ann = _layout(tmp_path, layout, with_test=False)
    train, test = read_dataset_layout(layout, videos, ann)  # type: ignore[arg-type]
    assert test is None and len(train) == 2


def test_kinetics_layout_with_every_clip_in_one_folder(tmp_path: Path) -> None:
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "train.csv").write_text(f"{K_HEADER}\nabseiling,zz,5,15,train\n")
    (ann / "validate.csv").write_text(f"{K_HEADER}\nabseiling,q1,0,10,validate\n")
    train, test = read_dataset_layout("kinetics", tmp_path / "clips", ann)
    assert train.entries[0].path == str(tmp_path / "clips" / "zz_000005_000015.mp4")
    assert test is not None
    assert test.entries[0].path == str(tmp_path / "clips" / "q1_000000_000010.mp4")


def test_dataset_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown dataset layout 'kinetics700'; expected one"):
        read_dataset_layout("kinetics700", tmp_path, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"annotation file not found: .*train\.csv"):
        read_dataset_layout("kinetics", tmp_path, tmp_path)
    with pytest.raises(ValueError, match="split must be 1, 2 or 3, got 4"):
        read_dataset_layout("hmdb51", tmp_path, tmp_path, split=4)


def test_video_list_roundtrip(tmp_path: Path) -> None:
    entries = [VideoEntry(str(tmp_path / "videos" / "a b.mp4"), 1, 64),
               VideoEntry(str(tmp_path / "videos" / "c.mp4"), 0, 30)]
    write_video_list(tmp_path / "train.txt", entries)
    assert (tmp_path / "train.txt").read_text().splitlines() == [
        os.path.join("videos", "a b.mp4") + " 64 1", os.path.join("videos", "c.mp4") + " 30 0"]
    index = read_video_list(tmp_path / "train.txt")
    assert index.entries == entries
    assert index.classes == ["0", "1"]
    (tmp_path / "classes.txt").write_text("walk\nrun\n")
    assert read_video_list(tmp_path / "train.txt").classes == ["walk", "run"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a.mp4 64", r"list\.txt:2: expected 'path num_frames label', got 2 field"),
        ("a.mp4 64 cat", r"list\.txt:2: label must be an integer, got 'cat'"),
        ("a.mp4 64 5", r"list\.txt:2: label must be in \[0, 3\), got 5"),
        ("a.mp4 -3 1", r"list\.txt:2: num_frames must be >= 1, got -3"),
        ("a.mp4 x 1", r"list\.txt:2: num_frames must be an integer"),
    ],
)
def test_video_list_bad_lines(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "list.txt").write_text("ok.mp4 10 0\n" + line + "\n")
    with pytest.raises(IndexFormatError, match=message):
        read_video_list(tmp_path / "list.txt", num_classes=3)


def test_write_list_needs_frame_counts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no num_frames"):
        write_video_list(tmp_path / "l.txt", [VideoEntry("a.mp4", 0)])


# ------------------------------------------------------------------------ build_index
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_build_index_probes_caches_and_reports(tmp_path: Path, make_video, executor) -> None:
    good = [make_video("a.mp4", num_frames=12), make_video("b.webm", "vp9-webm", num_frames=9)]
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    entries = [VideoEntry(str(good[0]), 0), VideoEntry(str(junk), 1),
               VideoEntry(str(tmp_path / "gone.mp4"), 1), VideoEntry(str(good[1]), 1)]
    cache = tmp_path / "index.json"
    report = build_index(entries, cache, workers=2, executor=executor)
    assert [(Path(e.path).name, e.num_frames, e.label) for e in report.entries] == [
        ("a.mp4", 12, 0), ("b.webm", 9, 1)]
    assert report.entries[0].fps == pytest.approx(30.0)
    assert [(Path(p).name, why) for p, why in report.failures][1] == ("gone.mp4", "no such file")
    assert "cannot open as a video" in report.failures[0][1]
    assert report.num_probed == 3 and report.num_cached == 0
    assert "2 readable videos" in report.format() and "junk.mp4" in report.format()

    again = build_index(entries, cache, workers=2, executor=executor)
    assert again.num_probed == 0 and again.num_cached == 3
    assert again.entries == report.entries

    make_video("a.mp4", num_frames=20)  # changed file: probed again
    os.utime(good[0], ns=(1, 1))
    third = build_index(entries, cache)
    assert third.num_probed == 1 and third.entries[0].num_frames == 20


def test_build_index_bad_arguments() -> None:
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        build_index([], workers=0)
    with pytest.raises(ValueError, match="executor must be"):
        build_index([], executor="gpu")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ split
@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=80), st.data())
def test_split_properties(labels: list[int], data) -> None:
    entries = [VideoEntry(f"v{i}", lab) for i, lab in enumerate(labels)]
    size = data.draw(st.integers(1, len(labels) - 1))
    seed = data.draw(st.integers(0, 1000))
    train, val = split_train_val(entries, size, seed=seed)
    assert len(val) == size and len(train) == len(labels) - size
    assert sorted(e.path for e in train + val) == sorted(e.path for e in entries)
    assert split_train_val(entries, size, seed=seed) == (train, val)
    counts, got = Counter(labels), Counter(e.label for e in val)
    for cls, n in counts.items():  # proportional shares, up to rounding and the keep-one rule
        assert abs(got[cls] - n * size / len(labels)) < 1 + (n == 1) + len(counts)
        if size <= len(labels) - len(counts):
            assert got[cls] < n  # every class keeps a training video when that is possible


def test_split_stratified_exact_and_fraction() -> None:
    entries = [VideoEntry(f"v{i}", i % 4) for i in range(40)]
    _, val = split_train_val(entries, 0.25, seed=3)
    assert sorted(Counter(e.label for e in val).values()) == [2, 2, 3, 3]
    assert len(val) == 10
    assert split_train_val(entries, 8, seed=1)[1] != split_train_val(entries, 8, seed=2)[1]
    _, plain = split_train_val(entries, 8, seed=1, stratify=False)
    assert len(plain) == 8


@pytest.mark.parametrize("size", [0, 40, 1.0, 0.0, True])
def test_split_bad_sizes(size) -> None:
    entries = [VideoEntry(f"v{i}", 0) for i in range(40)]
    with pytest.raises(ValueError, match="val_size"):
        split_train_val(entries, size)
