"""How a pipeline stage opens its model, always through a :class:`~edgedeploy.plan.DeploymentPlan`:

- ``model`` a **deployment directory** (what ``edgedeploy deploy`` wrote for this box): its
  manifest is verified (every file's sha256; its Ed25519 signature too when the pipeline has
  ``trusted_keys``) and its recorded plan is opened exactly as it was measured;
- ``engine: auto`` (the default): the engine and precision measured fastest for this model on
  this machine (:mod:`edgedeploy.deploy.choice`: measured once, cached per machine and model
  digest), with the INT8 copy ``edgedeploy optimize`` made for it among the candidates when one
  is cached (``reduced_precision``: False keeps to FP32);
- a named engine: that engine, FP32 (or ``precision``), as before.

What was opened, and why, is the stage's :class:`OpenedModel`, shown in the pipeline's start-up report.
"""

from __future__ import annotations

import logging
import types
from dataclasses import dataclass
from pathlib import Path

from edgedeploy import tasks, zoo
from edgedeploy.deploy.choice import choose
from edgedeploy.engines import EngineOptions, resolve
from edgedeploy.errors import UserError
from edgedeploy.ingest import load_model
from edgedeploy.plan import DeploymentPlan, ModelFile
from edgedeploy.vocab import Engine

log = logging.getLogger(__name__)

# A 16:9 frame: the size a detector's input shape is probed at when its engine is chosen (the
# engines rank alike at nearby sizes; the real frames' size is not known before the first one).
PROBE_FRAME_HW = (720, 1280)
_PROBE = {"rec": (1, 3, 48, 320), "cls": (1, 3, 48, 192)}


@dataclass
class OpenedModel:
    """A stage's opened model: the plan it runs and how that plan was arrived at."""

    stage: str
    plan: DeploymentPlan
    how: str

    def to_dict(self) -> dict:
        return {"stage": self.stage, "engine": self.plan.engine.value, "precision": self.plan.precision.value,
                "threads": self.plan.threads, "model": Path(self.plan.model.path).name, "how": self.how}

    def line(self) -> str:
        return (f"{self.stage}: {Path(self.plan.model.path).name} on {self.plan.engine.value} "
                f"{self.plan.precision.value}, {self.plan.threads or 'default'} thread(s): {self.how}")


def probe_shape(task: str, options: dict) -> tuple[int, ...]:
    """The input shape an ``engine: auto`` choice is measured at for ``task`` with its ``options``."""
    if task == "det":
        det_opts = tasks.common.make_options(tasks.det.DetOptions, options)
        h, w = tasks.det.TextDetector.input_size(types.SimpleNamespace(options=det_opts), *PROBE_FRAME_HW)
        return (1, 3, h, w)
    return _PROBE.get(task, (1, 3, 224, 224))


def int8_copy(model: str) -> Path | None:
    """The INT8 copy of zoo model ``model`` that ``edgedeploy optimize`` made for OpenVINO, if cached."""
    from edgedeploy.presets import int8_path

    path = int8_path(model, engine=Engine.OPENVINO.value)
    return path if path.is_file() else None


def _is_deployment(model: str) -> bool:
    return Path(model).is_dir()


def _deployment(directory: Path, trusted_keys) -> tuple[DeploymentPlan, str, str]:
    """(plan, zoo name of the model it ships, how it was checked) for a deployment directory:
    every file against its manifest, and the manifest's signature when ``trusted_keys`` are given
    (:func:`edgedeploy.security.signing.verify_directory`); nothing is loaded before that passes."""
    from edgedeploy.deploy.manifest import verify
    from edgedeploy.deploy.runtime import deployed_plan

    record = verify(directory, trusted_keys or None)
    checked = (f"signed by trusted key {record['_key_id']}" if trusted_keys
               else "not signature-checked: no trusted_keys given")
    how = f"deployment {directory} (files verified against its manifest; {checked})"
    plan = deployed_plan(directory, record).under(directory)
    return plan, record.get("source_model", {}).get("name", ""), how


def open_model(task: str, model: str, *, stage: str, path: str | None = None, engine: str = "auto",
               threads: int | None = 1, precision: str = "fp32", reduced_precision: bool = True,
               trusted_keys=None, **options):
    """(task object, :class:`OpenedModel`) for a stage; see the module docstring.

    model: a zoo name, or a deployment directory (its plan is run; pre- and post-processing come
    from the zoo model it was deployed from).
    path: run this file instead of the zoo's (e.g. an INT8 copy), keeping the zoo model's
    preprocessing and dictionary. options: the task's options (DetOptions, RecOptions...).
    """
    if _is_deployment(model):
        plan, source, how = _deployment(Path(model), trusted_keys)
        if source not in zoo.BY_NAME:
            raise UserError(f"deployment {model} was made from {source or 'an unnamed model'!r}, not a zoo model: "
                            f"a {task} stage takes its pre- and post-processing from the zoo model; deploy a zoo "
                            f"model (e.g. {_default_name(task)})")
        zmodel = zoo.fetch(source)
    else:
        zmodel = zoo.fetch(model)
        file, params = (str(path), None) if path else (str(zmodel.path), zmodel.params)
        if engine == Engine.AUTO and Path(file).suffix == ".onnx":
            int8 = int8_copy(model) if reduced_precision and not path else None
            choice = choose(file, probe_shape(task, options), threads=threads, int8=int8,
                            reduced_precision=reduced_precision)
            plan, how = choice.plan, f"engine auto: {choice.summary()}"
        else:
            named = engine != Engine.AUTO
            plan = DeploymentPlan(engine=engine if named else resolve("auto", load_model(file, params).format),
                                  precision=precision, model=ModelFile.of(file, params),
                                  options=EngineOptions(threads=threads, precision=precision))
            how = "engine named in the configuration" if named else "the native engine of a model that is not ONNX"
    session = plan.open()
    return tasks.build(task, session, zmodel, **options), OpenedModel(stage, plan, how)


def model_speedups(stage) -> list[str]:
    """The model switches ``stage`` (engine, reduced_precision) has not turned on."""
    out = [] if stage.engine == Engine.AUTO else ["engine: auto"]
    return out if stage.reduced_precision else [*out, "reduced_precision: true"]


def _default_name(task: str) -> str:
    return {"det": "ppocrv6-det", "rec": "ppocrv6-rec", "cls": "ppocr-cls"}.get(task, "a zoo model")


