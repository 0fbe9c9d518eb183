"""Video data for 3D ConvNets: decoding, clip sampling, indexes, transforms, datasets.

Modules (each documented with an example):

* :mod:`.samplers`: pure index math (:func:`consecutive_clip`, :func:`uniform_clip`, their
  ``*_clips`` test-time variants, :class:`ClipSampler`); needs numpy only.
* :mod:`.decoding`: :class:`VideoReader` (frame-exact PyAV reads, one seek per read, optional
  crop and resize before colour conversion) and :func:`probe_video`.
* :mod:`.indexes`: :class:`VideoEntry`, readers for Kinetics, UCF101, HMDB51, SS-V2 and plain
  lists, :func:`read_dataset_layout` (a dataset's files on disk: train and test indexes),
  :func:`build_index` (cached parallel probe), :func:`split_train_val`.
* :mod:`.transforms`: :class:`TrainTransform`, :class:`EvalTransform` and their crop plans.
* :mod:`.datasets`: :class:`VideoClipDataset` (train / val / test modes) over a frame source
  (:class:`FrameSource`), :func:`average_video_scores` and :class:`VideoScores`.
* :mod:`._cache`: :class:`FrameCache`, the in-memory frame source (each video decoded once).
* :mod:`._reader`: :class:`FrameReader`, the base of every reader (argument checks, lifetime).
* :mod:`.synthetic`: :func:`make_synthetic_dataset`, a motion-and-order dataset on disk.
* :mod:`._torchcodec`: :class:`TorchCodecReader`, the optional torchcodec decoder (CPU or
  NVDEC) behind the reader interface; :func:`torchcodec_status` says whether it works here.
* :mod:`._pool`: :class:`ReaderPool`, the file frame source (open readers reused inside a
  loader worker: ``VideoClipDataset(..., source=ReaderPool(max_open=8))``) and
  :func:`open_reader` (decoder choice; PyAV by default).
* :mod:`.device_transforms`: flips and normalisation on the batch's device, for loaders that
  ship ``uint8`` crops (:class:`~.device_transforms.TrainCrop`).
* :mod:`.prepare`: ``video3d data prepare``: re-encode a dataset for fast training reads.
* :mod:`.errors`: :class:`VideoDecodeError`, :class:`IndexFormatError`,
  :class:`UnknownClassError`.

Names are re-exported here lazily: ``import video3d.data`` imports neither torch nor av.

Example:
    >>> import numpy as np
    >>> from video3d.data import ClipSampler
    >>> ClipSampler("consecutive", 4, stride=2).test_clips(20).tolist()
    [[6, 8, 10, 12]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from video3d._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # samplers
    "ClipSampler": "samplers",
    "DEFAULT_SHORT_POLICY": "samplers",
    "consecutive_clip": "samplers",
    "consecutive_clips": "samplers",
    "uniform_clip": "samplers",
    "uniform_clips": "samplers",
    # errors
    "IndexFormatError": "errors",
    "UnknownClassError": "errors",
    "VideoDecodeError": "errors",
    # decoding
    "VideoInfo": "decoding",
    "VideoReader": "decoding",
    "probe_video": "decoding",
    "clear_keyframe_cache": "decoding",
    # optional decoders and reader reuse
    "TorchCodecReader": "_torchcodec",
    "UnsupportedContainerError": "_torchcodec",
    "torchcodec_status": "_torchcodec",
    "ReaderPool": "_pool",
    "open_reader": "_pool",
    "FrameCache": "_cache",
    "MemoryReader": "_cache",
    "FrameReader": "_reader",
    # indexes
    "DATASET_LAYOUTS": "indexes",
    "IndexReport": "indexes",
    "VideoEntry": "indexes",
    "VideoIndex": "indexes",
    "build_index": "indexes",
    "read_dataset_layout": "indexes",
    "read_hmdb51": "indexes",
    "read_kinetics_csv": "indexes",
    "read_ssv2": "indexes",
    "read_ucf101": "indexes",
    "read_video_list": "indexes",
    "split_train_val": "indexes",
    "write_video_list": "indexes",
    # transforms
    "CropPlan": "transforms",
    "EvalTransform": "transforms",
    "TrainTransform": "transforms",
    "flip_allowed": "transforms",
    # datasets
    "FrameSource": "datasets",
    "VideoClipDataset": "datasets",
    "VideoScores": "datasets",
    "average_video_scores": "datasets",
    # synthetic
    "SyntheticDataset": "synthetic",
    "make_synthetic_dataset": "synthetic",
}

__all__ = [
    "ClipSampler",
    "CropPlan",
    "DATASET_LAYOUTS",
    "DEFAULT_SHORT_POLICY",
    "EvalTransform",
    "FrameCache",
    "FrameReader",
    "FrameSource",
    "IndexFormatError",
    "IndexReport",
    "MemoryReader",
    "ReaderPool",
    "SyntheticDataset",
    "TrainTransform",
    "UnknownClassError",
    "UnsupportedContainerError",
    "VideoClipDataset",
    "VideoDecodeError",
    "VideoEntry",
    "VideoIndex",
    "VideoInfo",
    "VideoReader",
    "VideoScores",
    "TorchCodecReader",
    "average_video_scores",
    "build_index",
    "clear_keyframe_cache",
    "consecutive_clip",
    "consecutive_clips",
    "flip_allowed",
    "make_synthetic_dataset",
    "open_reader",
    "probe_video",
    "read_dataset_layout",
    "read_hmdb51",
    "read_kinetics_csv",
    "read_ssv2",
    "read_ucf101",
    "read_video_list",
    "split_train_val",
    "torchcodec_status",
    "uniform_clip",
    "uniform_clips",
    "write_video_list",
]

if TYPE_CHECKING:
    from video3d.data._cache import FrameCache, MemoryReader
    from video3d.data._pool import ReaderPool, open_reader
    from video3d.data._reader import FrameReader
    from video3d.data._torchcodec import (
        TorchCodecReader,
        UnsupportedContainerError,
        torchcodec_status,
    )
    from video3d.data.datasets import (
        FrameSource,
        VideoClipDataset,
        VideoScores,
        average_video_scores,
    )
    from video3d.data.decoding import (
        VideoInfo,
        VideoReader,
        clear_keyframe_cache,
        probe_video,
    )
    from video3d.data.errors import IndexFormatError, UnknownClassError, VideoDecodeError
    from video3d.data.indexes import (
        DATASET_LAYOUTS,
        IndexReport,
        VideoEntry,
        VideoIndex,
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
    from video3d.data.samplers import (
        DEFAULT_SHORT_POLICY,
        ClipSampler,
        consecutive_clip,
        consecutive_clips,
        uniform_clip,
        uniform_clips,
    )
    from video3d.data.synthetic import SyntheticDataset, make_synthetic_dataset
    from video3d.data.transforms import CropPlan, EvalTransform, TrainTransform, flip_allowed


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
