"""Dataset indexes: annotation readers, a cached parallel probe, and a train/val split.

An index is a list of :class:`VideoEntry` (video path, integer label, and, once probed, the
decoded frame count and frame rate) plus the class names (:class:`VideoIndex`). Readers for the
formats users have:

* Kinetics-400/600 CSV (``label,youtube_id,time_start,time_end,split``; files
  ``{youtube_id}_{start:06d}_{end:06d}.mp4``): :func:`read_kinetics_csv`;
* UCF101 ``classInd.txt`` + ``trainlist0N.txt``/``testlist0N.txt``: :func:`read_ucf101`;
* HMDB51 ``{class}_test_splitN.txt`` (tag 1 train, 2 test, 0 unused): :func:`read_hmdb51`;
* Something-Something V2 labels json + train/validation json: :func:`read_ssv2`;
* a plain list ``path num_frames label`` per line: :func:`read_video_list` /
  :func:`write_video_list`.

:func:`read_dataset_layout` reads a whole dataset as it is laid out on disk (which annotation
files, which video folders): its training index and, where the layout has one, its test index
(what ``video3d data index --format ...`` indexes).

:func:`build_index` probes every video once (decoded frame count, fps, readable), in parallel
processes or threads, and caches the result in a JSON file keyed by path, size and mtime, so a
re-run only probes new or changed files; unreadable files are reported and left out.
:func:`split_train_val` carves a seeded, class-stratified internal validation set out of the
training set (planning never sees the official validation or test set).

Malformed annotations raise :class:`~video3d.data.errors.IndexFormatError` (or
:class:`~video3d.data.errors.UnknownClassError`) naming the file and line.

Example:
    >>> from video3d.data.indexes import VideoEntry, split_train_val
    >>> entries = [VideoEntry(f"v{i}.mp4", i % 2, 64, 25.0) for i in range(10)]
    >>> train, val = split_train_val(entries, 4, seed=0)
    >>> len(train), len(val), sorted(e.label for e in val)
    (6, 4, [0, 0, 1, 1])
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from video3d.data.errors import IndexFormatError, UnknownClassError, VideoDecodeError

__all__ = [
    "DATASET_LAYOUTS",
    "IndexReport",
    "VideoEntry",
    "VideoIndex",
    "build_index",
    "read_hmdb51",
    "read_dataset_layout",
    "read_kinetics_csv",
    "read_ssv2",
    "read_ucf101",
    "read_video_list",
    "split_train_val",
    "write_video_list",
]

_logger = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]
_CACHE_VERSION = 1


@dataclass(frozen=True)
class VideoEntry:
    """One video of a dataset.

    Attributes:
        path: The video file.
        label: Class id (``-1`` for an unlabeled test entry).
        num_frames: Decoded frame count, once probed.
        fps: Frame rate, once probed.
    """

    path: str
    label: int
    num_frames: int | None = None
    fps: float | None = None


@dataclass
class VideoIndex:
    """Entries and class names of one split of a dataset."""

    entries: list[VideoEntry]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.entries)


# ---------------------------------------------------------------------------- helpers
def _lines(path: Path) -> Iterable[tuple[int, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                yield number, line


def _int_field(value: str, what: str, path: Path, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise IndexFormatError(f"{what} must be an integer, got {value!r}", path=path,
                               line=line) from None


def _class_id(name: str, lookup: dict[str, int], path: Path, line: int) -> int:
    if name not in lookup:
        raise UnknownClassError(f"unknown class {name!r}", path=path, line=line)
    return lookup[name]


# ---------------------------------------------------------------------------- Kinetics
def read_kinetics_csv(
    csv_path: PathLike,
    video_root: PathLike,
    *,
    classes: Sequence[str] | None = None,
    ext: str = ".mp4",
    layout: Literal["flat", "by_class"] = "flat",
) -> VideoIndex:
    """Reads a Kinetics-400/600/700 annotation CSV.

    Args:
        csv_path: ``train.csv``/``validate.csv``/``test.csv`` with columns ``label``,
            ``youtube_id``, ``time_start``, ``time_end`` (others, e.g. ``split`` or ``is_cc``,
            are ignored). Without a ``label`` column every entry gets label ``-1``.
        video_root: Folder with the clips.
        classes: Class names in id order; default: the sorted labels of this CSV (pass the
            training set's classes when reading the validation CSV).
        ext: Clip file extension.
        layout: ``"flat"``: ``root/{id}_{start:06d}_{end:06d}{ext}``; ``"by_class"``: the same
            file inside a ``root/{label}/`` folder.
    """
    path, root = Path(csv_path), Path(video_root)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        missing = {"youtube_id", "time_start", "time_end"} - columns
        if missing:
            raise IndexFormatError(f"header lacks columns {sorted(missing)}", path=path, line=1)
        rows = [(reader.line_num, row) for row in reader]
    labeled = "label" in columns
    if classes is None:
        classes = sorted({row["label"] for _, row in rows if row.get("label")}) if labeled else []
    lookup = {name: i for i, name in enumerate(classes)}
    entries = []
    for line, row in rows:
        if None in row.values() or None in row:
            raise IndexFormatError(
                f"expected {len(columns)} fields, got a different count", path=path, line=line
            )
        label = _class_id(row["label"], lookup, path, line) if labeled else -1
        start = _time_field(row["time_start"], "time_start", path, line)
        end = _time_field(row["time_end"], "time_end", path, line)
        name = f"{row['youtube_id']}_{start:06d}_{end:06d}{ext}"
        folder = root / row["label"] if layout == "by_class" and labeled else root
        entries.append(VideoEntry(str(folder / name), label))
    return VideoIndex(entries, list(classes))


def _time_field(value: str, what: str, path: Path, line: int) -> int:
    try:
        number = float(value)
    except ValueError:
        raise IndexFormatError(f"{what} must be a number, got {value!r}", path=path,
                               line=line) from None
    if number < 0 or number != int(number):
        raise IndexFormatError(f"{what} must be a whole second >= 0, got {value!r}", path=path,
                               line=line)
    return int(number)


# ---------------------------------------------------------------------------- UCF101
def _check_split(split: int, subset: str) -> None:
    """The official-split arguments of UCF101 and HMDB51."""
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split!r}")
    if subset not in ("train", "test"):
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")


def _read_class_ind(path: Path) -> list[str]:
    named: dict[int, str] = {}
    for line, text in _lines(path):
        parts = text.split()
        if len(parts) != 2:
            raise IndexFormatError(f"expected 'id name', got {text!r}", path=path, line=line)
        number = _int_field(parts[0], "class id", path, line)
        if number in named:
            raise IndexFormatError(f"class id {number} appears twice", path=path, line=line)
        named[number] = parts[1]
    if sorted(named) != list(range(1, len(named) + 1)):
        raise IndexFormatError(f"class ids must be 1..{len(named)}, got {sorted(named)}",
                               path=path)
    return [named[i] for i in range(1, len(named) + 1)]


def read_ucf101(
    annotation_dir: PathLike,
    video_root: PathLike,
    *,
    split: int = 1,
    subset: Literal["train", "test"] = "train",
) -> VideoIndex:
    """Reads a UCF101 split (``classInd.txt`` and ``trainlist0N.txt``/``testlist0N.txt``).

    Class ids are 0-based (``classInd`` id minus one). A train-list label that disagrees with
    the video's class folder is an error.
    """
    _check_split(split, subset)
    folder, root = Path(annotation_dir), Path(video_root)
    classes = _read_class_ind(folder / "classInd.txt")
    lookup = {name.lower(): i for i, name in enumerate(classes)}
    path = folder / f"{subset}list{split:02d}.txt"
    entries = []
    for line, text in _lines(path):
        parts = text.split()
        if len(parts) not in (1, 2):
            raise IndexFormatError(f"expected 'path [label]', got {text!r}", path=path,
                                   line=line)
        rel = parts[0]
        if "/" not in rel:
            raise IndexFormatError(f"expected 'Class/video.avi', got {rel!r}", path=path,
                                   line=line)
        label = _class_id(rel.split("/")[0].lower(), lookup, path, line)
        if len(parts) == 2:
            given = _int_field(parts[1], "label", path, line)
            if not 1 <= given <= len(classes):
                raise IndexFormatError(f"label must be in 1..{len(classes)}, got {given}",
                                       path=path, line=line)
            if given - 1 != label:
                raise IndexFormatError(
                    f"label {given} ({classes[given - 1]}) disagrees with the class folder of "
                    f"{rel!r} ({label + 1})", path=path, line=line,
                )
        entries.append(VideoEntry(str(root / rel), label))
    return VideoIndex(entries, classes)


# ---------------------------------------------------------------------------- HMDB51
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d)\.txt$")


def read_hmdb51(
    split_dir: PathLike,
    video_root: PathLike,
    *,
    split: int = 1,
    subset: Literal["train", "test"] = "train",
) -> VideoIndex:
    """Reads an HMDB51 split from its ``{class}_test_split{N}.txt`` files.

    Tag 1 marks training videos, 2 test videos, 0 unused ones. Classes are the sorted class
    names; videos live at ``video_root/{class}/{name}``.
    """
    _check_split(split, subset)
    folder, root = Path(split_dir), Path(video_root)
    if not folder.is_dir():
        raise FileNotFoundError(f"split folder not found: {folder}")
    files: dict[str, Path] = {}
    for item in folder.iterdir():
        match = _HMDB_FILE.match(item.name)
        if match and int(match["split"]) == split:
            files[match["cls"]] = item
    if not files:
        raise FileNotFoundError(f"no *_test_split{split}.txt files in {folder}")
    classes = sorted(files)
    want = 1 if subset == "train" else 2
    entries = []
    for label, name in enumerate(classes):
        path = files[name]
        for line, text in _lines(path):
            parts = text.split()
            if len(parts) != 2:
                raise IndexFormatError(f"expected 'video tag', got {text!r}", path=path,
                                       line=line)
            tag = _int_field(parts[1], "tag", path, line)
            if tag not in (0, 1, 2):
                raise IndexFormatError(f"tag must be 0, 1 or 2, got {tag}", path=path,
                                       line=line)
            if tag == want:
                entries.append(VideoEntry(str(root / name / parts[0]), label))
    return VideoIndex(entries, classes)


# ---------------------------------------------------------------------------- SS-V2
def _template_name(template: str) -> str:
    return template.replace("[", "").replace("]", "").strip()


def read_ssv2(
    labels_json: PathLike,
    annotations_json: PathLike,
    video_root: PathLike,
    *,
    ext: str = ".webm",
) -> VideoIndex:
    """Reads Something-Something V2 (``labels.json`` + ``train.json``/``validation.json``).

    The label of an entry is its ``template`` with the brackets removed, looked up in the
    labels json (``{"Approaching something with your camera": "0", ...}``). Videos live at
    ``video_root/{id}{ext}``.
    """
    labels_path, ann_path, root = Path(labels_json), Path(annotations_json), Path(video_root)
    labels = _load_json(labels_path)
    if not isinstance(labels, dict):
        raise IndexFormatError("expected an object {template: id}", path=labels_path)
    lookup: dict[str, int] = {}
    for name, value in labels.items():
        try:
            lookup[name] = int(value)
        except (TypeError, ValueError):
            raise IndexFormatError(f"id of {name!r} must be an integer, got {value!r}",
                                   path=labels_path) from None
    if sorted(lookup.values()) != list(range(len(lookup))):
        raise IndexFormatError(f"ids must be 0..{len(lookup) - 1}", path=labels_path)
    classes = [""] * len(lookup)
    for name, number in lookup.items():
        classes[number] = name
    annotations = _load_json(ann_path)
    if not isinstance(annotations, list):
        raise IndexFormatError("expected a list of entries", path=ann_path)
    entries = []
    for number, item in enumerate(annotations, start=1):
        if not isinstance(item, dict) or "id" not in item or "template" not in item:
            raise IndexFormatError("entry lacks 'id' or 'template'", path=ann_path,
                                   line=number)
        label = _class_id(_template_name(str(item["template"])), lookup, ann_path, number)
        entries.append(VideoEntry(str(root / f"{item['id']}{ext}"), label))
    return VideoIndex(entries, classes)


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise IndexFormatError(f"not valid JSON ({exc.msg})", path=path, line=exc.lineno) from exc


# ---------------------------------------------------------------------------- layouts
DatasetLayout = Literal["kinetics", "ucf101", "hmdb51", "ssv2"]
#: The dataset layouts :func:`read_dataset_layout` reads.
DATASET_LAYOUTS: tuple[str, ...] = ("kinetics", "ucf101", "hmdb51", "ssv2")


def read_dataset_layout(
    layout: DatasetLayout,
    video_root: PathLike,
    annotations: PathLike,
    *,
    split: int = 1,
) -> tuple[VideoIndex, VideoIndex | None]:
    """Reads a dataset as it is laid out on disk: ``(train, test)`` indexes.

    Layouts (``annotations`` is the folder named; ``test`` is ``None`` where its file is
    missing):

    * ``"kinetics"``: ``train.csv`` and, for the test index, ``validate.csv``
      (:func:`read_kinetics_csv`, test classes taken from the training CSV); clips in
      ``video_root/train/`` and ``video_root/val/`` when those folders exist, else all in
      ``video_root``.
    * ``"ucf101"``: ``classInd.txt``, ``trainlist0N.txt`` and ``testlist0N.txt`` for
      ``split`` N (:func:`read_ucf101`); videos at ``video_root/Class/v_Class_g01_c01.avi``.
    * ``"hmdb51"``: the ``{class}_test_split{N}.txt`` files (:func:`read_hmdb51`); videos at
      ``video_root/{class}/{name}``.
    * ``"ssv2"``: ``labels.json``, ``train.json`` and, for the test index,
      ``validation.json`` (:func:`read_ssv2`); videos at ``video_root/{id}.webm``.

    Raises:
        ValueError: An unknown layout (or a bad ``split``).
        FileNotFoundError: A required annotation file is missing.
        IndexFormatError: An annotation file is malformed.
    """
    videos, ann = Path(video_root), Path(annotations)
    if layout == "kinetics":
        train_dir, val_dir = videos / "train", videos / "val"
        train = read_kinetics_csv(ann / "train.csv",
                                  train_dir if train_dir.is_dir() else videos)
        test_csv = ann / "validate.csv"
        if not test_csv.is_file():
            return train, None
        return train, read_kinetics_csv(test_csv, val_dir if val_dir.is_dir() else videos,
                                        classes=train.classes)
    if layout == "ucf101":
        return (read_ucf101(ann, videos, split=split, subset="train"),
                read_ucf101(ann, videos, split=split, subset="test"))
    if layout == "hmdb51":
        return (read_hmdb51(ann, videos, split=split, subset="train"),
                read_hmdb51(ann, videos, split=split, subset="test"))
    if layout == "ssv2":
        train = read_ssv2(ann / "labels.json", ann / "train.json", videos)
        val = ann / "validation.json"
        return train, read_ssv2(ann / "labels.json", val, videos) if val.is_file() else None
    raise ValueError(f"unknown dataset layout {layout!r}; expected one of {DATASET_LAYOUTS}")


# ---------------------------------------------------------------------------- plain list
def read_video_list(
    list_path: PathLike,
    *,
    root: PathLike | None = None,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
) -> VideoIndex:
    """Reads a plain list with one ``path num_frames label`` per line.

    Paths may contain spaces (the last two fields are split off). Relative paths are taken
    relative to ``root`` (default: the list's folder).

    Args:
        list_path: The list file.
        root: Base folder of relative paths.
        num_classes: Labels must lie in ``[0, num_classes)``; default ``len(classes)`` if
            given, else any label >= 0.
        classes: Class names (default: ``classes.txt`` next to the list if present, one name
            per line, else ``["0", "1", ...]`` up to the largest label).
    """
    path = Path(list_path)
    base = Path(root) if root is not None else path.parent
    if classes is None and (path.parent / "classes.txt").is_file():
        classes = [text for _, text in _lines(path.parent / "classes.txt")]
    if num_classes is None and classes is not None:
        num_classes = len(classes)
    entries = []
    for line, text in _lines(path):
        parts = text.rsplit(maxsplit=2)
        if len(parts) != 3:
            raise IndexFormatError(
                f"expected 'path num_frames label', got {len(parts)} field(s): {text!r}",
                path=path, line=line,
            )
        rel, frames_text, label_text = parts
        frames = _int_field(frames_text, "num_frames", path, line)
        label = _int_field(label_text, "label", path, line)
        if frames < 1:
            raise IndexFormatError(f"num_frames must be >= 1, got {frames}", path=path,
                                   line=line)
        if label < 0 or (num_classes is not None and label >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise IndexFormatError(f"label must be in {bound}, got {label}", path=path,
                                   line=line)
        video = Path(rel) if os.path.isabs(rel) else base / rel
        entries.append(VideoEntry(str(video), label, frames))
    if classes is None:
        top = max((e.label for e in entries), default=-1)
        classes = [str(i) for i in range(top + 1)]
    return VideoIndex(entries, list(classes))


def write_video_list(
    list_path: PathLike, entries: Iterable[VideoEntry], *, root: PathLike | None = None
) -> None:
    """Writes ``path num_frames label`` lines (paths relative to ``root`` when inside it).

    Raises:
        ValueError: An entry has no frame count (probe it with :func:`build_index` first).
    """
    path = Path(list_path)
    base = Path(root) if root is not None else path.parent
    lines = []
    for entry in entries:
        if entry.num_frames is None:
            raise ValueError(f"entry {entry.path!r} has no num_frames; probe it first")
        try:
            rel = os.path.relpath(entry.path, base)
            shown = rel if not rel.startswith("..") else entry.path
        except ValueError:  # other drive on Windows
            shown = entry.path
        lines.append(f"{shown} {entry.num_frames} {entry.label}\n")
    path.write_text("".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------------- probing
@dataclass
class IndexReport:
    """Result of :func:`build_index`.

    Attributes:
        entries: Readable entries, with ``num_frames`` and ``fps`` filled in, in input order.
        failures: ``(path, reason)`` for every video left out.
        num_probed: Videos decoded in this run.
        num_cached: Videos answered from the cache.
    """

    entries: list[VideoEntry]
    failures: list[tuple[str, str]] = field(default_factory=list)
    num_probed: int = 0
    num_cached: int = 0

    def format(self) -> str:
        """A short text report listing the left-out videos."""
        head = (
            f"{len(self.entries)} readable videos ({self.num_probed} probed, "
            f"{self.num_cached} from cache), {len(self.failures)} left out"
        )
        return "\n".join([head, *(f"  {p}: {why}" for p, why in self.failures)])


def _probe_one(path: str, count_frames: str) -> dict[str, Any]:
    from video3d.data.decoding import probe_video

    try:
        info = probe_video(path, count_frames=count_frames)  # type: ignore[arg-type]
    except VideoDecodeError as exc:
        return {"error": exc.reason}
    except Exception as exc:  # noqa: BLE001 - any failure makes the video unusable
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "num_frames": info.num_frames,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "error": None,
    }


def _load_cache(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        _logger.warning("ignoring unreadable index cache %s (%s)", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return {}
    videos = data.get("videos", {})
    return videos if isinstance(videos, dict) else {}


def _save_cache(path: Path, videos: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    payload = {"version": _CACHE_VERSION, "videos": videos}
    tmp.write_text(json.dumps(payload, indent=0, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def build_index(
    entries: Iterable[VideoEntry] | VideoIndex,
    cache_path: PathLike | None = None,
    *,
    workers: int = 1,
    executor: Literal["process", "thread"] = "process",
    count_frames: Literal["decode", "auto", "header"] = "decode",
) -> IndexReport:
    """Probes every video once and fills in ``num_frames`` and ``fps``.

    Args:
        entries: The videos (e.g. ``read_kinetics_csv(...)``).
        cache_path: JSON cache; entries whose file size and mtime are unchanged are not
            probed again (failures included). ``None`` disables caching.
        workers: Parallel probes; 1 probes in this process.
        executor: ``"process"`` (spawned processes) or ``"thread"``.
        count_frames: ``"decode"`` decodes every frame (exact count, proves readability);
            ``"auto"`` trusts MP4 headers.

    Returns:
        An :class:`IndexReport`; missing or unreadable videos are in ``failures``, not raised.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if executor not in ("process", "thread"):
        raise ValueError(f"executor must be 'process' or 'thread', got {executor!r}")
    items = list(entries.entries if isinstance(entries, VideoIndex) else entries)
    cache_file = Path(cache_path) if cache_path is not None else None
    cache = _load_cache(cache_file)
    results: dict[str, dict[str, Any]] = {}
    todo: list[str] = []
    stats: dict[str, tuple[int, int]] = {}
    report = IndexReport([])
    for entry in items:
        key = os.path.abspath(entry.path)
        if key in stats or key in results:
            continue
        try:
            st = os.stat(key)
        except OSError:
            results[key] = {"error": "no such file"}
            continue
        stats[key] = (st.st_size, st.st_mtime_ns)
        hit = cache.get(key)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            results[key] = hit
            report.num_cached += 1
        else:
            todo.append(key)
    for key, result in zip(todo, _run_probes(todo, workers, executor, count_frames)):
        size, mtime = stats[key]
        results[key] = {**result, "size": size, "mtime_ns": mtime}
        report.num_probed += 1
    for entry in items:
        result = results[os.path.abspath(entry.path)]
        if result.get("error"):
            report.failures.append((entry.path, str(result["error"])))
        else:
            report.entries.append(
                replace(entry, num_frames=int(result["num_frames"]), fps=float(result["fps"]))
            )
    if cache_file is not None and (report.num_probed or not cache_file.is_file()):
        cache.update({k: v for k, v in results.items() if k in stats})
        _save_cache(cache_file, cache)
    for path, why in report.failures:
        _logger.warning("leaving out %s: %s", path, why)
    return report


def _run_probes(
    paths: list[str], workers: int, executor: str, count_frames: str
) -> list[dict[str, Any]]:
    if workers == 1 or len(paths) <= 1:
        return [_probe_one(p, count_frames) for p in paths]
    pool: cf.Executor
    if executor == "thread":
        pool = cf.ThreadPoolExecutor(max_workers=workers)
    else:
        import multiprocessing

        pool = cf.ProcessPoolExecutor(
            max_workers=min(workers, len(paths)), mp_context=multiprocessing.get_context("spawn")
        )
    with pool:
        return list(pool.map(_probe_one, paths, [count_frames] * len(paths)))


# ---------------------------------------------------------------------------- split
def split_train_val(
    entries: Sequence[VideoEntry],
    val_size: int | float,
    *,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """Seeded internal train/validation split of a training set.

    Args:
        entries: The official training entries.
        val_size: Number of validation videos (int), or a fraction in (0, 1).
        seed: Seed of the draw.
        stratify: Give every class a share of the validation set proportional to its size
            (largest remainders), keeping at least one training video per class when it can.

    Returns:
        ``(train, val)``, each in the input order.
    """
    total = len(entries)
    if isinstance(val_size, bool):
        raise ValueError(f"val_size must be an int or a fraction, got {val_size!r}")
    if isinstance(val_size, float):
        if not 0.0 < val_size < 1.0:
            raise ValueError(f"a fractional val_size must be in (0, 1), got {val_size!r}")
        count = round(val_size * total)
    else:
        count = int(val_size)
    if not 0 < count < total:
        raise ValueError(
            f"val_size must leave both parts non-empty, got {val_size!r} for {total} entries"
        )
    rng = np.random.default_rng(seed)
    if stratify:
        chosen = _stratified_pick(np.array([e.label for e in entries]), count, rng)
    else:
        chosen = rng.choice(total, size=count, replace=False)
    mask = np.zeros(total, dtype=bool)
    mask[chosen] = True
    train = [e for e, m in zip(entries, mask) if not m]
    val = [e for e, m in zip(entries, mask) if m]
    return train, val


def _stratified_pick(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    classes, sizes = np.unique(labels, return_counts=True)
    exact = sizes * count / len(labels)
    quota = np.floor(exact).astype(np.int64)
    # Largest remainders get the leftover slots; ties broken at random.
    order = np.lexsort((rng.random(len(classes)), -(exact - quota)))
    for i in order[: count - int(quota.sum())]:
        quota[i] += 1
    # Keep one training video per class where possible: move excess slots elsewhere.
    cap = np.maximum(sizes - 1, 0)
    excess = int(np.maximum(quota - cap, 0).sum())
    quota = np.minimum(quota, cap)
    while excess:
        room = np.flatnonzero(quota < cap)
        target = room if room.size else np.flatnonzero(quota < sizes)
        pick = target[np.argmax(exact[target] - quota[target])]
        if room.size == 0:
            cap[pick] = sizes[pick]
        quota[pick] += 1
        excess -= 1
    picked = [
        rng.choice(np.flatnonzero(labels == cls), size=int(q), replace=False)
        for cls, q in zip(classes, quota)
    ]
    return np.concatenate(picked) if picked else np.array([], dtype=np.int64)
