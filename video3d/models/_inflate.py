"""Inflate a 2D ResNet state dict (torchvision key names) into a video ResNet's state dict."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import torch

from video3d.models._config import UnitKind, VideoResNetConfig
from video3d.models._net import VideoResNet

__all__ = ["inflate_resnet2d", "load_resnet2d_state_dict", "stem_tap"]

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def stem_tap(stem_temporal_kernel: int) -> int:
    """The temporal tap of the stem kernel that receives the 2D kernel: the centre one.

    Example:
        >>> stem_tap(4), stem_tap(1)
        (2, 0)
    """
    return stem_temporal_kernel // 2


def _add_time(w: torch.Tensor, taps: int = 1, at: int = 0) -> torch.Tensor:
    """(O, I, kh, kw) → (O, I, taps, kh, kw) with ``w`` at tap ``at`` and zeros elsewhere."""
    if taps == 1:
        return w.unsqueeze(2).clone()
    out = w.new_zeros((w.shape[0], w.shape[1], taps, *w.shape[2:]))
    out[:, :, at] = w
    return out


def _temporal_init(kind: UnitKind, target: torch.Tensor) -> torch.Tensor:
    """Temporal conv start: identity at the centre tap for cascade (A), zero for B and C."""
    out = torch.zeros_like(target)
    if kind == "A":
        c_out, c_in, taps = target.shape[:3]
        if c_out != c_in:
            raise ValueError(f"a P3D-A temporal conv must be square, got shape {target.shape}.")
        out[:, :, taps // 2, 0, 0] = torch.eye(c_out, dtype=target.dtype, device=target.device)
    return out


def _block_prefixes(
    config: VideoResNetConfig,
) -> Iterator[tuple[str, str, UnitKind]]:
    """(3D prefix, 2D prefix, unit kind) of every block, the spatial head's layer4 included."""
    for s, kinds in enumerate(config.unit_kinds, start=1):
        for b, kind in enumerate(kinds):
            yield f"layer{s}.{b}.", f"layer{s}.{b}.", kind
    if config.dual_head:
        for b, kind in enumerate(config.unit_kinds[3]):
            yield f"spatial_layer4.{b}.", f"layer4.{b}.", kind


class _Mapper:
    """Reads 2D tensors by key, checking presence and shape, and records what was used."""

    def __init__(self, src: Mapping[str, torch.Tensor], dst: Mapping[str, torch.Tensor]) -> None:
        self.src = src
        self.dst = dst
        self.used: set[str] = set()
        self.out: dict[str, torch.Tensor] = {}

    def get(self, key: str) -> torch.Tensor:
        if key not in self.src:
            raise ValueError(
                f"2D state dict has no {key!r}; is it a torchvision-style ResNet of the "
                f"target's depth and block type?"
            )
        self.used.add(key)
        return self.src[key]

    def put(self, key: str, value: torch.Tensor) -> None:
        expected = self.dst[key]
        if tuple(value.shape) != tuple(expected.shape):
            raise ValueError(
                f"shape mismatch for {key!r}: the target expects {tuple(expected.shape)}, the 2D "
                f"weights give {tuple(value.shape)} (different width or depth?)."
            )
        self.out[key] = value.to(dtype=expected.dtype)

    def conv(self, dst_key: str, src_key: str, taps: int = 1, at: int = 0) -> None:
        self.put(dst_key, _add_time(self.get(src_key), taps, at))

    def bn(self, dst: str, src: str) -> None:
        for k in _BN_KEYS:
            if k == "num_batches_tracked" and src + k not in self.src:
                continue
            self.put(dst + k, self.get(src + k).clone())


def inflate_resnet2d(
    state_2d: Mapping[str, torch.Tensor],
    target: VideoResNet,
    *,
    copy_fc: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Map a 2D ResNet state dict onto ``target``'s architecture (a pure function).

    Rules (DESIGN §3): every conv gets a time axis of 1; the stem's 2D kernel sits at the centre
    temporal tap (:func:`stem_tap`), the other taps zero; I3D's 3×3×3 convs likewise hold the 2D
    kernel at their centre tap; P3D temporal convs start as identity (A) or zero (B, C); the
    global context's ``expand`` Linear is zero (weight and bias); the spatial head's layer4 is a
    copy of layer4. So a static clip (one frame repeated) reproduces the 2D network up to layer4
    and in the temporal head. Blocks are addressed by explicit stage/block indices from the
    target's config, never by the order of keys.

    Parameters the 2D network lacks and the rules do not fix (``gc.reduce``, and ``fc`` /
    ``spatial_fc`` when not copied) are taken from ``target``'s current state, so the result
    loads with ``target.load_state_dict(result)`` (strict). Neither input is modified.

    Args:
        state_2d: torchvision key names (``conv1.weight``, ``layer1.0.conv1.weight``, ...).
        target: the model whose architecture (and fill-in values) to use. R(2+1)D is not
            supported: its mid width differs from the 2D 3×3 conv's.
        copy_fc: copy the 2D ``fc`` into every head; ``None`` copies it when the class count
            matches, ``False`` never does, ``True`` requires it.

    Returns:
        A complete state dict for ``target``.

    Raises:
        ValueError: a 2D key is missing, a shape differs, or the 2D dict has layers or blocks
            the target lacks (e.g. ResNet-101 weights into a ResNet-50).
    """
    config = target.config
    if config.unit == "r2plus1d":
        raise ValueError(
            "cannot inflate 2D weights into R(2+1)D: its mid width (parameter-preserving) "
            "differs from the 2D 3x3 conv's; train it from scratch or from a video checkpoint."
        )
    dst = target.state_dict()
    m = _Mapper(state_2d, dst)
    st = config.stem_temporal_stride
    m.conv("conv1.weight", "conv1.weight", st, stem_tap(st))
    m.bn("bn1.", "bn1.")
    bottleneck = config.block_family == "bottleneck"
    unit_conv, unit_bn = ("conv2", "bn2.") if bottleneck else ("conv1", "bn1.")
    for p3, p2, kind in _block_prefixes(config):
        taps = 3 if kind == "i3d" else 1
        m.conv(f"{p3}{unit_conv}.weight", f"{p2}{unit_conv}.weight", taps, taps // 2)
        m.bn(p3 + unit_bn, p2 + unit_bn)
        if kind in ("A", "B", "C"):
            m.put(f"{p3}conv_t.weight", _temporal_init(kind, dst[f"{p3}conv_t.weight"]))
        if bottleneck:
            m.conv(f"{p3}conv1.weight", f"{p2}conv1.weight")
            m.bn(p3 + "bn1.", p2 + "bn1.")
            m.conv(f"{p3}conv3.weight", f"{p2}conv3.weight")
            m.bn(p3 + "bn3.", p2 + "bn3.")
        else:
            m.conv(f"{p3}conv2.weight", f"{p2}conv2.weight")
            m.bn(p3 + "bn2.", p2 + "bn2.")
        if f"{p3}downsample.0.weight" in dst:
            m.conv(f"{p3}downsample.0.weight", f"{p2}downsample.0.weight")
            m.bn(f"{p3}downsample.1.", f"{p2}downsample.1.")
        if f"{p3}gc.expand.weight" in dst:
            m.put(f"{p3}gc.expand.weight", torch.zeros_like(dst[f"{p3}gc.expand.weight"]))
            m.put(f"{p3}gc.expand.bias", torch.zeros_like(dst[f"{p3}gc.expand.bias"]))
    _map_fc(m, dst, copy_fc, config.dual_head)
    _check_leftovers(state_2d, m.used)
    out = {k: v.detach().clone() for k, v in dst.items()}
    out.update(m.out)
    return out


def _map_fc(
    m: _Mapper, dst: Mapping[str, torch.Tensor], copy_fc: bool | None, dual: bool
) -> None:
    heads = ["fc.", "spatial_fc."] if dual else ["fc."]
    have = "fc.weight" in m.src and "fc.bias" in m.src
    fits = have and tuple(m.src["fc.weight"].shape) == tuple(dst["fc.weight"].shape)
    if copy_fc is True and not fits:
        got = tuple(m.src["fc.weight"].shape) if have else "no fc"
        raise ValueError(
            f"copy_fc=True but the 2D fc ({got}) does not fit the target's "
            f"{tuple(dst['fc.weight'].shape)}."
        )
    m.used.update(k for k in ("fc.weight", "fc.bias") if k in m.src)
    if copy_fc is False or not fits:
        return
    for head in heads:
        m.put(head + "weight", m.src["fc.weight"].clone())
        m.put(head + "bias", m.src["fc.bias"].clone())


def _check_leftovers(state_2d: Mapping[str, torch.Tensor], used: set[str]) -> None:
    left = sorted(k for k in state_2d if k not in used)
    if left:
        shown = ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")
        raise ValueError(
            f"{len(left)} 2D keys have no place in the target ({shown}); the 2D network is "
            f"deeper or of another block type than the target."
        )


def load_resnet2d_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a 2D ResNet checkpoint file the user gives (no download), for :func:`inflate_resnet2d`.

    Accepts a bare state dict or one under ``"state_dict"`` / ``"model"``, strips a
    ``"module."`` prefix (DataParallel), and loads with ``weights_only=True``.
    """
    obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{os.fspath(path)!r} does not hold a state dict (got {type(obj)}).")
    return {
        (k[len("module."):] if k.startswith("module.") else k): v
        for k, v in obj.items()
        if isinstance(v, torch.Tensor)
    }
