"""Power: RAPL read from a fake powercap tree (wraparound, permissions), and 'estimated' without a sensor."""

from __future__ import annotations

import time

import pytest

from edgedeploy.benchmarking import power
from edgedeploy.benchmarking.power import DeviceProfile, RaplSensor, TegrastatsSensor, measure

PROFILE = DeviceProfile(name="test", cores=2, tdp_per_core_w=4.0, idle_fraction=0.25, basis="test")


@pytest.fixture
def no_tegrastats(monkeypatch):
    monkeypatch.setattr(power.shutil, "which", lambda name: None)


def _rapl(root, energy_uj: int, max_uj: int = 2**32):
    domain = root / "intel-rapl:0"
    (domain / "intel-rapl:0:0").mkdir(parents=True)  # a core subdomain: must not be counted twice
    (domain / "intel-rapl:0:0" / "energy_uj").write_text("5")
    (domain / "name").write_text("package-0")
    (domain / "max_energy_range_uj").write_text(str(max_uj))
    (domain / "energy_uj").write_text(str(energy_uj))
    return domain / "energy_uj"


def test_without_any_sensor_the_figure_is_estimated_and_says_so(tmp_path, no_tegrastats):
    with measure(sysfs_root=tmp_path, profile=PROFILE) as p:
        time.sleep(0.02)
    assert not p.measured and p.source.startswith("estimated:")
    assert "no RAPL package domains" in p.source and "4.0 W assumed" in p.source
    assert PROFILE.idle_w <= p.watts <= PROFILE.tdp_w


def test_rapl_energy_over_time_is_measured_watts(tmp_path, no_tegrastats):
    counter = _rapl(tmp_path, 1_000_000)
    with measure(sysfs_root=tmp_path, profile=PROFILE) as p:
        counter.write_text(str(1_000_000 + 3_000_000))  # 3 J
    assert p.measured and p.source == "measured: RAPL package"
    assert p.watts == pytest.approx(3.0 / p.seconds)


def test_rapl_counter_wraparound(tmp_path, no_tegrastats):
    counter = _rapl(tmp_path, 999_000_000, max_uj=1_000_000_000)
    with measure(sysfs_root=tmp_path, profile=PROFILE) as p:
        counter.write_text("1000000")  # wrapped: 1 J before the wrap + 1 J after
    assert p.watts == pytest.approx(2.0 / p.seconds)


def test_unreadable_rapl_falls_back_to_an_estimate_with_the_reason(tmp_path, no_tegrastats, monkeypatch):
    _rapl(tmp_path, 1)

    def denied(self):
        raise PermissionError("energy_uj")

    monkeypatch.setattr(RaplSensor, "_read", denied)
    with measure(sysfs_root=tmp_path, profile=PROFILE) as p:
        pass
    assert not p.measured and "not readable (root only" in p.source


def test_estimate_scales_with_utilisation():
    assert PROFILE.estimate(0.0) == pytest.approx(2.0)
    assert PROFILE.estimate(1.0) == pytest.approx(8.0)
    assert PROFILE.estimate(2.0) == pytest.approx(8.0)


def test_tegrastats_line_parsing():
    line = "RAM 2048/3964MB CPU [12%@1479,5%@1479] GPU 0% POM_5V_IN 3254/3100 VDD_IN 4512mW/4400mW"
    assert TegrastatsSensor.parse(line) == pytest.approx(4.512)
    assert TegrastatsSensor.parse("RAM 2048/3964MB CPU [12%@1479]") is None
