from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from video3d.models import (
    bn_stats_frozen,
    build_model,
    freeze_bn_stats,
    unfreeze_bn_stats,
)


def _bns(model: nn.Module) -> dict[str, nn.BatchNorm3d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm3d)}


def _step(model: nn.Module, opt: torch.optim.Optimizer, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 3, 8, 32, 32, generator=g) * 2 + 1
    y = torch.randint(0, 5, (4,), generator=g)
    model.train()  # must not undo the freeze
    loss = model.loss(model(x), y)  # type: ignore[operator]
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.parametrize("name", ["dg_p3d_resnet10", "p3d_resnet10"])
def test_frozen_stats_stay_while_affine_params_and_stem_stats_change(name: str) -> None:
    torch.manual_seed(0)
    net = build_model(name, num_classes=5, width=0.125, stem_temporal_stride=2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    frozen = net.freeze_bn_stats()  # type: ignore[operator]
    assert "bn1" not in frozen and "layer1.0.bn1" in frozen
    assert set(frozen) == set(_bns(net)) - {"bn1"}
    before = {k: copy.deepcopy(v.state_dict()) for k, v in _bns(net).items()}
    _step(net, opt)
    _step(net, opt, seed=1)
    for k, bn in _bns(net).items():
        old = before[k]
        if k == "bn1":  # stem BN keeps updating
            assert not torch.equal(old["running_mean"], bn.running_mean)
            assert int(bn.num_batches_tracked) == 2
            continue
        assert torch.equal(old["running_mean"], bn.running_mean), k
        assert torch.equal(old["running_var"], bn.running_var), k
        assert torch.equal(old["num_batches_tracked"], bn.num_batches_tracked), k
    changed = [k for k, bn in _bns(net).items() if not torch.equal(before[k]["bias"], bn.bias)]
    assert "layer4.0.bn1" in changed and len(changed) > len(before) // 2


def test_unfreeze_restores_training_statistics() -> None:
    torch.manual_seed(0)
    net = build_model("p3d_resnet10", num_classes=5, width=0.125, stem_temporal_stride=2)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.freeze_bn_stats()  # type: ignore[operator]
    assert net.bn_stats_frozen  # type: ignore[truthy-function]
    thawed = net.unfreeze_bn_stats()  # type: ignore[operator]
    assert "layer1.0.bn1" in thawed and not net.bn_stats_frozen  # type: ignore[truthy-function]
    bn = net.layer2[0].bn2  # type: ignore[index]
    before = bn.running_mean.clone()
    assert bn.training
    _step(net, opt)
    assert not torch.equal(before, bn.running_mean)
    assert unfreeze_bn_stats(net) == []


def test_frozen_bn_uses_running_stats_in_training_mode() -> None:
    bn_model = nn.Sequential(nn.BatchNorm3d(2), nn.BatchNorm3d(2))
    freeze_bn_stats(bn_model)
    x = torch.randn(3, 2, 2, 2, 2) * 5 + 3
    bn_model.train()
    out = bn_model(x)
    expected = bn_model[1].eval()(bn_model[0].train()(x))
    torch.testing.assert_close(out, expected)


def test_freeze_survives_deepcopy_and_pickle_and_is_idempotent() -> None:
    net = build_model("p3d_resnet10", num_classes=5, width=0.125)
    freeze_bn_stats(net, exclude=("bn1",))
    freeze_bn_stats(net, exclude=("bn1",))
    assert len(net.layer1[0].bn1._forward_pre_hooks) == 1  # type: ignore[index]
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        clone.train()
        bn = clone.layer1[0].bn1  # type: ignore[index]
        before = bn.running_mean.clone()
        clone(torch.randn(2, 3, 4, 32, 32) + 3)
        assert torch.equal(before, bn.running_mean)
        assert bn_stats_frozen(clone)


def test_freeze_rejects_unknown_exclude_names() -> None:
    net = build_model("p3d_resnet10", num_classes=5, width=0.125)
    with pytest.raises(ValueError, match=r"\['stem'\] are not BatchNorm"):
        freeze_bn_stats(net, exclude=("stem",))
