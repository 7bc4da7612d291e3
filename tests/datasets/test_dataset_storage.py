import json

import numpy as np
import pytest

from edgedeploy import datasets
from edgedeploy.errors import UserError


@pytest.mark.parametrize("name", list(datasets.DATASETS))
def test_round_trip(name, tmp_path):
    samples = datasets.generate(name, 2, seed=4)
    datasets.save(samples, tmp_path / name)
    loaded = datasets.load(tmp_path / name)
    assert len(loaded) == 2
    for a, b in zip(samples, loaded):
        assert type(a) is type(b)
        assert np.array_equal(a.image, b.image)
        for field in ("texts", "text", "label", "code", "seed", "index"):
            assert getattr(a, field, None) == getattr(b, field, None)
        for x, y in zip(getattr(a, "boxes", []), getattr(b, "boxes", [])):
            assert y.dtype == np.float32 and np.array_equal(x, y)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
        "00000.png", "00001.png", "labels.json"]  # no temporary files left


def test_load_missing(tmp_path):
    with pytest.raises(UserError, match="labels.json is missing") as err:
        datasets.load(tmp_path / "nowhere")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content", ["{not json", '{"format": 1}', '{"format": 1, "kind": '
                                     '"Nope", "samples": [{"image": "00000.png"}]}',
                                     '{"format": 99, "kind": "LineSample", "samples": []}'])
def test_load_malformed(tmp_path, content):
    (tmp_path / "labels.json").write_text(content)
    with pytest.raises(UserError, match="malformed") as err:
        datasets.load(tmp_path)
    assert "\n" not in str(err.value)


def test_load_missing_image(tmp_path):
    datasets.save(datasets.make_rec_lines(1, seed=0), tmp_path)
    (tmp_path / "00000.png").unlink()
    with pytest.raises(UserError, match="00000.png"):
        datasets.load(tmp_path)


def test_save_refuses_mixed_kinds(tmp_path):
    mixed = datasets.make_rec_lines(1, seed=0) + datasets.make_lines(1, seed=0)
    with pytest.raises(UserError):
        datasets.save(mixed, tmp_path)
    assert not (tmp_path / "labels.json").exists()


def test_labels_are_plain_json(tmp_path):
    datasets.save(datasets.make_container_panels(1, seed=0), tmp_path)
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert labels["kind"] == "ContainerSample"
    assert len(labels["samples"][0]["code"]) == 11
