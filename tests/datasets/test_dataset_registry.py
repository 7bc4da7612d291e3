import pytest

from edgedeploy import datasets
from edgedeploy.datasets import fonts
from edgedeploy.errors import UserError


@pytest.mark.parametrize("name", list(datasets.DATASETS))
def test_generate_each(name):
    samples = datasets.generate(name, 1, seed=0)
    assert len(samples) == 1 and isinstance(samples[0], datasets.DATASETS[name].sample)
    assert datasets.generate(name, 0, seed=0) == []


def test_unknown_name_suggests():
    with pytest.raises(UserError, match="did you mean 'containers'"):
        datasets.generate("container", 1, 0)
    with pytest.raises(UserError, match="choose from pages"):
        datasets.generate("zzz", 1, 0)


def test_fonts_found_and_varied():
    paths = fonts.find_fonts()
    assert len(paths) >= 5 and all(p.suffix == ".ttf" for p in paths)
    assert len({p.stem.split("-")[0] for p in paths}) >= 3  # Sans, Serif, Mono...


def test_missing_fonts_say_what_to_install(monkeypatch):
    monkeypatch.setattr(fonts, "_installed", lambda: {})
    with pytest.raises(UserError, match="install fonts-dejavu-core") as err:
        datasets.make_pages(1, seed=0)
    assert "\n" not in str(err.value)
