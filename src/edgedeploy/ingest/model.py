"""One entry point for every model we accept: an ONNX file, a Paddle inference model, a zoo name.

:func:`load_model` checks the files once, at the edge, and returns a :class:`Model`. A Paddle
model is run natively by Paddle Inference (and OpenVINO's Paddle front end); any other engine
gets its ONNX conversion, made once with paddle2onnx and cached by content hash.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgedeploy.errors import UserError
from edgedeploy.zoo import BY_NAME, ZooEntry, cache_dir

log = logging.getLogger(__name__)

Format = Literal["onnx", "paddle"]
PADDLE_MODEL_SUFFIXES = (".pdmodel", ".json")


@dataclass(frozen=True)
class Model:
    """A model on disk, validated: its format, files, and zoo metadata when it came from the zoo."""

    name: str
    format: Format
    path: Path
    params: Path | None = None
    zoo: ZooEntry | None = None
    _converted: dict = field(default_factory=dict, compare=False, repr=False)

    def files(self) -> list[Path]:
        return [p for p in (self.path, self.params) if p is not None]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def content_hash(self) -> str:
        """sha256 over the model's files (cache key for conversions)."""
        h = hashlib.sha256()
        for p in self.files():
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()

    def onnx_path(self) -> Path:
        """The model as ONNX: the file itself, or its paddle2onnx conversion (cached)."""
        if self.format == "onnx":
            return self.path
        if "onnx" not in self._converted:
            from edgedeploy.ingest.paddle_convert import convert_cached

            out = cache_dir() / "converted" / f"{self.content_hash()[:24]}.onnx"
            self._converted["onnx"] = convert_cached(self.path, self.params, out, name=self.name)
        return self._converted["onnx"]


def load_model(source: str | Path | Model, params: str | Path | None = None) -> Model:
    """Resolve ``source`` — a :class:`Model`, a zoo name, an ``.onnx`` file, or a Paddle model
    (a directory, or a ``.pdmodel``/``.json`` file with its ``.pdiparams``) — into a :class:`Model`.

    Raises :class:`UserError` for a missing path, an unknown format, or a file that is not a model.
    """
    if isinstance(source, Model):
        return source
    from edgedeploy.zoo import ZooModel

    if isinstance(source, ZooModel):
        source = source.name
    text = str(source)
    if text in BY_NAME and not Path(text).exists():
        from edgedeploy import zoo

        zm = zoo.fetch(text)
        return _from_path(zm.path, zm.params, zoo_entry=zm.entry, name=text)
    path = Path(text).expanduser()
    if not path.exists():
        from edgedeploy.errors import did_you_mean

        hint = did_you_mean(text, BY_NAME)
        raise UserError(
            f"model {text!r} not found: expected a path to an .onnx file or a Paddle model "
            f"(directory or .pdmodel/.json + .pdiparams), or a zoo name{hint} (see `edgedeploy zoo list`)"
        )
    return _from_path(path, Path(params).expanduser() if params else None)


def _from_path(path: Path, params: Path | None, *, zoo_entry: ZooEntry | None = None, name: str | None = None) -> Model:
    if path.is_dir():
        path, params = _paddle_in_dir(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        _check_onnx(path)
        return Model(name=name or path.stem, format="onnx", path=path, zoo=zoo_entry)
    if suffix in PADDLE_MODEL_SUFFIXES:
        params = params or path.with_suffix(".pdiparams")
        if not params.exists():
            raise UserError(
                f"Paddle model {path} has no parameters file: expected {params.name} beside it; "
                "pass it explicitly (Config(model, params) or --params)"
            )
        _check_paddle(path, params)
        return Model(name=name or path.parent.name if path.stem == "inference" else name or path.stem,
                     format="paddle", path=path, params=params, zoo=zoo_entry)
    raise UserError(
        f"{path} is not a model format edgedeploy reads (suffix {suffix or 'none'!r}); "
        "expected .onnx, .pdmodel/.json + .pdiparams, or a Paddle model directory"
    )


def _paddle_in_dir(directory: Path) -> tuple[Path, Path]:
    for stem in ("inference", "model", "__model__"):
        for suffix in PADDLE_MODEL_SUFFIXES:
            candidate = directory / f"{stem}{suffix}"
            if candidate.exists():
                return candidate, candidate.with_suffix(".pdiparams")
    models = sorted(p for p in directory.iterdir() if p.suffix in PADDLE_MODEL_SUFFIXES + (".onnx",))
    if len(models) == 1:
        return models[0], models[0].with_suffix(".pdiparams")
    raise UserError(
        f"directory {directory} holds no single model: expected inference.pdmodel (or .json) with "
        f"inference.pdiparams, or exactly one .onnx file; found {[p.name for p in models] or 'none'}"
    )


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, or others on random bytes
        raise UserError(
            f"{path} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:120] or 'cannot parse'}); "
            "the file may be truncated or not ONNX: re-export or re-download it"
        ) from None
    if not proto.graph.node and not proto.graph.output:
        raise UserError(f"{path} parses as ONNX but holds an empty graph; re-export the model")
    initializers = {t.name for t in proto.graph.initializer}
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        # -1 is how older exporters (paddle2onnx) mark a dynamic axis; 0 or below -1 is no shape at all
        bad = [d.dim_value for d in dims if d.HasField("dim_value") and (d.dim_value == 0 or d.dim_value < -1)]
        if bad:
            shape = "x".join(d.dim_param or str(d.dim_value) if d.HasField("dim_value") or d.dim_param else "?"
                             for d in dims)
            raise UserError(f"{path}: input {value.name!r} declares shape [{shape}] with dimension {bad[0]}; every "
                            "fixed dimension must be at least 1 (a dynamic one is a name, e.g. 'N', or -1): re-export it")


#: ProgramDesc (paddle/fluid/framework/framework.proto): blocks = 1, version = 4, op_version_map = 5
_PROGRAM_FIELDS = {1: 2, 4: 2, 5: 2}
#: BlockDesc: idx = 1, parent_idx = 2, vars = 3, ops = 4, forward_block_idx = 5 (wire type 0 varint, 2 bytes)
_BLOCK_FIELDS = {1: 0, 2: 0, 3: 2, 4: 2, 5: 0}


def _proto_fields(data: bytes) -> list:
    """The top-level (field number, wire type, data) of a protobuf message whose schema we do not load:
    parsing checks the wire format, which random or truncated bytes fail."""
    from google.protobuf import empty_pb2
    from google.protobuf.unknown_fields import UnknownFieldSet

    message = empty_pb2.Empty()
    message.ParseFromString(data)
    return [(f.field_number, f.wire_type, f.data) for f in UnknownFieldSet(message)]


def _check_paddle_program(model: Path) -> None:
    """Refuse a .pdmodel that is not a Paddle ProgramDesc before Paddle reads it: Paddle's C++ parser
    takes random or truncated bytes down with a segmentation fault."""
    from google.protobuf.message import DecodeError

    problem = None
    try:
        fields = _proto_fields(model.read_bytes())
        if not any(number == 1 for number, _, _ in fields):
            problem = "it holds no program block"
        for number, wire, data in fields:
            if _PROGRAM_FIELDS.get(number) != wire:
                problem = f"field {number} is not one of a program's"
                break
            if number == 1 and any(_BLOCK_FIELDS.get(n) != w for n, w, _ in _proto_fields(data)):
                problem = "a block holds fields no Paddle block has"
                break
    except DecodeError:
        problem = "the protobuf wire format is corrupt (truncated or not a .pdmodel)"
    if problem:
        raise UserError(f"{model} is not a Paddle inference program ({problem}); re-export the model "
                        "(paddle.jit.save) or re-download it")


def _check_paddle(model: Path, params: Path) -> None:
    for p in (model, params):
        if p.stat().st_size == 0:
            raise UserError(f"{p} is empty; re-export or re-download the Paddle model")
    if model.suffix == ".json":
        import json

        try:
            program = json.loads(model.read_text())
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{model} is not a Paddle PIR program (invalid JSON); re-export the model") from None
        if not isinstance(program, dict):
            raise UserError(f"{model} is not a Paddle PIR program (a JSON {type(program).__name__}, not an "
                            "object); re-export the model")
    else:
        _check_paddle_program(model)
