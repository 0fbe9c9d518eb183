"""video3d: the reference workload of stageplan (3D ConvNets on encoded video).

Sub-packages: :mod:`video3d.data` (decoding, samplers, indexes, transforms, datasets) and
:mod:`video3d.models` (DG-P3D and baselines). Nothing here imports torchvision, and importing
this package imports nothing heavy.
"""

from __future__ import annotations

__all__: list[str] = []
