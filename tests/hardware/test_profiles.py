"""Hardware profiles: the SPEC devices with sources, this machine probed, names resolved."""

from __future__ import annotations

import pytest

from edgedeploy import hardware
from edgedeploy.errors import UserError

SPEC_DEVICES = {"jetson-nano", "jetson-orin-nano", "jetson-agx-orin", "rk3588", "atlas-500", "kria-kv260",
                "raspberry-pi-5", "intel-nuc", "coral", "hailo-8"}


def test_every_spec_device_with_a_basis_for_each_figure():
    assert {d.key for d in hardware.DEVICES} == SPEC_DEVICES
    for d in hardware.DEVICES:
        assert d.sources and d.power_w and d.stack
        for u in d.units:
            for fig in u.peak.values():
                assert fig.basis.split(":")[0] in ("published", "derived")
    nano = hardware.get("Jetson_Nano")
    assert nano.bandwidth.value == 25.6e9 and nano.memory_bytes.value == 4e9 and nano.power_w == (5, 10)


def test_local_is_probed():
    me = hardware.local()
    assert me.local and me.cpu_unit.peak["fp32"].basis.startswith("derived: probed")
    assert me.memory_bytes.value > 0 and me.bandwidth.value > 1e8
    assert hardware.get("local") is me


def test_unknown_name_lists_the_known():
    with pytest.raises(UserError, match=r"unknown hardware 'rk3589' \(did you mean 'rk3588'\?\); known: jetson-nano"):
        hardware.get("rk3589")
