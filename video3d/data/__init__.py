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
* :mod:`.synthetic`: :func:`make_synthetic_dataset`, a motion-and-order dataset on disk, and
  :func:`make_events_dataset`, the harder event-order family with a difficulty knob.
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
    "make_events_dataset": "synthetic",
    "make_synthetic_dataset": "synthetic",
}

# One list: _EXPORTS (name -> sub-module) is the public API; type checkers see the names
# through the module-level __getattr__ (as Any), readers through the sub-modules' own docs.
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
