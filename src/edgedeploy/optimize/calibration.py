"""Calibration data: input tensors that look like what the model will see in service.

Sources (``calib=``):

- ``None`` / ``"task"``: the task's generated data set (``edgedeploy.datasets``, seed
  :data:`CALIB_SEED`, disjoint from the accuracy data) through the model's own preprocessing;
- a data set name (``"orientation"``, ``"pages"``, ...): the same, with that data set;
- a folder of images (``.png``/``.jpg``/``.bmp``): read with OpenCV, through the model's own
  preprocessing (the zoo model's, or the ``like=`` one's);
- a folder of ``.npy`` files: tensors fed as they are (for models the zoo does not describe).

Every tensor is checked against the model's input (rank, static dimensions, dtype), and there
must be at least :data:`MIN_SAMPLES`. Methods (how activation ranges come from the data):
``default`` (the quantizer's own: ORT MinMax, NNCF the mean of per-sample min/max),
``minmax``, ``entropy`` (ORT: KL divergence; NNCF: its histogram estimator) and
``percentile`` (ORT: 99.999th percentile; NNCF: mean per-sample quantile).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgedeploy.errors import UserError, did_you_mean

CALIB_SEED = 0
MIN_SAMPLES = 8
DEFAULT_SAMPLES = {"det": 16, "layout": 16, "orientation": 32, "cls": 64, "rec": 64}
METHODS = ("default", "minmax", "entropy", "percentile")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class CalibrationSet:
    """Input feeds for calibration (each a dict input name → array), and where they came from."""

    feeds: list[dict[str, np.ndarray]]
    source: str
    method: str = "default"
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.feeds)

    def reader(self):
        """An ``onnxruntime.quantization.CalibrationDataReader`` over the feeds (fresh each call)."""
        from onnxruntime.quantization import CalibrationDataReader

        feeds = self.feeds

        class _Reader(CalibrationDataReader):
            def __init__(self):
                self._it = iter(feeds)

            def get_next(self):
                return next(self._it, None)

            def rewind(self):
                self._it = iter(feeds)

        return _Reader()


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"calibration method {method!r}{did_you_mean(method, METHODS)}; choose one of {', '.join(METHODS)}")
    return method


def build(session, *, calib: str | Path | Sequence | None, task_obj=None, task: str | None = None,
          n: int | None = None, method: str = "default", min_samples: int = MIN_SAMPLES) -> CalibrationSet:
    """Calibration feeds for ``session`` (anything with ``inputs``) from ``calib`` (see the module doc).

    task_obj: the task object (``edgedeploy.tasks``) whose ``preprocess`` turns an image into
    the model's input; needed for generated data and image folders. n: samples wanted
    (default: per task, :data:`DEFAULT_SAMPLES`).
    """
    check_method(method)
    want = n or DEFAULT_SAMPLES.get(task or "", 32)
    if calib is not None and not isinstance(calib, (str, Path)):  # a list of arrays or feeds, from Python
        tensors, source = list(calib), f"{len(calib)} given arrays"
        feeds = [t if isinstance(t, dict) else {session.inputs[0].name: np.asarray(t)} for t in tensors]
    elif calib is None or str(calib) == "task" or _is_dataset(str(calib)):
        feeds, source = _from_dataset(session, task_obj, task, None if calib in (None, "task") else str(calib), want)
    else:
        path = Path(calib).expanduser()
        if not path.is_dir():
            raise UserError(f"--calib {calib!r} is neither a folder nor a data set name; expected a folder of images "
                            f"or .npy tensors, or one of: task, {', '.join(_dataset_names())}")
        feeds, source = _from_folder(session, task_obj, path, n)
    _check(session, feeds, source, min_samples)
    return CalibrationSet(feeds, source, method)


def _dataset_names() -> list[str]:
    from edgedeploy.datasets import DATASETS

    return list(DATASETS)


def _is_dataset(name: str) -> bool:
    return name in _dataset_names() and not Path(name).exists()


def _preprocessor(task_obj) -> Callable[[np.ndarray], list[np.ndarray]]:
    """image → the model's input tensors, through the task's own preprocessing."""
    if task_obj is None:
        raise UserError("calibration from images needs the model's preprocessing: use a zoo model, pass --task "
                        "(with a zoo model as --like), or give a folder of .npy input tensors")
    if task_obj.task in ("cls", "rec"):  # line tasks batch their crops: [(indices, batch), ...]
        return lambda img: [batch for _, batch in task_obj.preprocess([img])]
    return lambda img: [task_obj.preprocess(img)]


def _from_dataset(session, task_obj, task: str | None, dataset: str | None, n: int) -> tuple[list, str]:
    from edgedeploy import datasets
    from edgedeploy.evaluation.runner import TASKS

    if dataset is None:
        if task is None or task not in TASKS:
            raise UserError("no calibration data: give --calib (a folder of images or .npy tensors, or a data set "
                            "name) or --task so that the task's generated data can be used")
        dataset = TASKS[task].dataset
    pre = _preprocessor(task_obj)
    name = session.inputs[0].name
    feeds = [{name: t} for s in datasets.generate(dataset, n, CALIB_SEED) for t in pre(s.image)]
    return feeds, f"generated {dataset} n={n} seed={CALIB_SEED} through the model's preprocessing"


def _from_folder(session, task_obj, path: Path, n: int | None) -> tuple[list, str]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"))
    if n:
        files = files[:n]
    if not files:
        raise UserError(f"--calib {path}: no images ({', '.join(IMAGE_SUFFIXES)}) or .npy files in the folder")
    name = session.inputs[0].name
    feeds = []
    if all(p.suffix == ".npy" for p in files):
        for p in files:
            arr = np.load(p, allow_pickle=False)
            spec = session.inputs[0]
            if arr.ndim == len(spec.shape) - 1:  # one sample without its batch dimension
                arr = arr[None]
            feeds.append({name: arr})
        return feeds, f"{len(files)} .npy tensors from {path}"
    import cv2

    pre = _preprocessor(task_obj)
    for p in files:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise UserError(f"--calib: {p} could not be read as an image; remove it or convert it to PNG/JPEG")
        feeds.extend({name: t} for t in pre(img))
    return feeds, f"{len(files)} images from {path} through the model's preprocessing"


def _check(session, feeds: list[dict], source: str, min_samples: int) -> None:
    if len(feeds) < min_samples:
        raise UserError(f"calibration data from {source}: {len(feeds)} sample(s); at least {min_samples} are needed "
                        f"(32 or more recommended) for stable INT8 ranges — add images or raise --calib-samples")
    spec = session.inputs[0]
    for i, f in enumerate(feeds):
        arr = f[spec.name]
        bad = arr.ndim != len(spec.shape) or any(w is not None and d != w for d, w in zip(arr.shape, spec.shape))
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():  # the quantizer asserts on it
            raise UserError(f"calibration sample {i} from {source} holds NaN or infinity; give finite tensors")
        if bad:
            raise UserError(f"calibration sample {i} from {source} has shape {'x'.join(map(str, arr.shape))}; "
                            f"the model's input {spec.name!r} is {spec.shape_str()} — give tensors of that shape "
                            "(or images, which go through the model's preprocessing)")
        if arr.dtype != spec.dtype:
            f[spec.name] = arr.astype(spec.dtype) if np.issubdtype(arr.dtype, np.floating) else arr
            if f[spec.name].dtype != spec.dtype:
                raise UserError(f"calibration sample {i} from {source} has dtype {arr.dtype}; the model expects {spec.dtype}")
