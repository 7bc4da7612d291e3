"""Reading, checking and drafting model cards (see :mod:`edgedeploy.cards.schema`)."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.cards.schema import Color, Interpolation, Layout, ModelCard, Resize
from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.vocab import Task

CARD_SUFFIX = ".card.yaml"


def card_path(model: str | Path) -> Path:
    """Where the card of ``model`` lives: ``net.onnx`` → ``net.card.yaml`` beside it."""
    p = Path(model)
    return p.with_name(p.name[: -len(p.suffix)] + CARD_SUFFIX if p.suffix else p.name + CARD_SUFFIX)


def parse(data: dict, *, source: str = "card") -> ModelCard:
    """A :class:`ModelCard` from a mapping; unknown keys and bad values are one-line :class:`UserError` s."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of card keys (size, layout, color, mean, std, ...), "
                        f"got {type(data).__name__}")
    known = list(ModelCard.model_fields)
    for key in data:
        if key not in known:
            raise UserError(f"{source}: unknown key {key!r}{did_you_mean(key, known)}; card keys are {', '.join(known)}")
    try:
        return ModelCard(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "card"
        raise UserError(f"{source}: {where}: {err['msg'].removeprefix('Value error, ')} "
                        f"(given {err.get('input')!r})") from None


def load(path: str | Path) -> ModelCard:
    """The card in the YAML file ``path``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"card {path} not found: expected a YAML model card (write a draft with "
                        "`edgedeploy card init MODEL`)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"card {path} is not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    return parse(data, source=f"card {path}")


def find(model: str | Path | None, card: str | Path | ModelCard | None = None) -> ModelCard | None:
    """``card`` if given (a :class:`ModelCard` or a YAML path), else ``MODEL.card.yaml`` beside the model, else None."""
    if isinstance(card, ModelCard):
        return card
    if card is not None:
        return load(card)
    if model is not None and Path(str(model)).suffix:
        beside = card_path(model)
        if beside.is_file():
            return load(beside)
    return None


# How the zoo tasks resize (edgedeploy.tasks: the orientation classifier resizes the short side to
# 256 with INTER_AREA and cuts the 224 centre, OrientationOptions' defaults; the others stretch).
# tests/cards checks that these stay equal to the tasks' own options.
ZOO_RESIZE = {"orientation": {"resize": Resize.CROP, "resize_short": 256, "interpolation": Interpolation.AREA}}


def from_zoo(entry) -> ModelCard:
    """The card of a zoo model, read from the zoo registry's preprocessing (no second path)."""
    pre = entry.preprocess
    task = Task(entry.task) if entry.task in Task.__members__.values() else Task.NONE
    return ModelCard(size=tuple(entry.example_shape[2:4]), layout=Layout.NCHW, color=Color(pre.channel_order),
                     scale=pre.scale, mean=pre.mean, std=pre.std, task=task, labels=tuple(entry.labels),
                     **ZOO_RESIZE.get(entry.task, {"resize": Resize.STRETCH}))


def input_shape(model_path: str | Path, name: str | None = None) -> tuple[str, list[int | None]]:
    """(input name, shape with None for dynamic dimensions) of an ONNX model's input ``name`` (default: first)."""
    import onnx

    g = onnx.load(str(model_path), load_external_data=False).graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if not inputs:
        raise UserError(f"{model_path} has no inputs")
    chosen = next((i for i in inputs if i.name == name), None) if name else inputs[0]
    if chosen is None:
        names = [i.name for i in inputs]
        raise UserError(f"card input {name!r} is not an input of {model_path}{did_you_mean(name, names)}; "
                        f"inputs: {', '.join(names)}")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in chosen.type.tensor_type.shape.dim]
    return chosen.name, dims


def check(card: ModelCard, shape: list[int | None], *, source: str = "card") -> None:
    """Refuse, in one line, a card that contradicts the model's input ``shape`` (channels, static size)."""
    if len(shape) != 4:
        if card.size is not None or card.layout is not Layout.NCHW:
            raise UserError(f"{source}: the model's input has rank {len(shape)} ({_fmt(shape)}); a card's size, "
                            "layout and colours describe images (rank 4): remove them, or feed .npy tensors")
        return
    c_axis, hw = (1, (2, 3)) if card.layout is Layout.NCHW else (3, (1, 2))
    c = shape[c_axis]
    if c is not None and c != card.channels:
        other = Layout.NHWC if card.layout is Layout.NCHW else Layout.NCHW
        hint = f"; or layout: {other.value}?" if shape[3 if c_axis == 1 else 1] == card.channels else ""
        raise UserError(f"{source}: color {card.color.value} means {card.channels} channel(s) but the model's input "
                        f"{_fmt(shape)} has {c} on the {card.layout.value} channel axis — set color "
                        f"{'GRAY' if c == 1 else 'RGB or BGR'}{hint}")
    if card.size is not None:
        for axis, want, what in zip(hw, card.size, ("height", "width")):
            if shape[axis] is not None and shape[axis] != want:
                raise UserError(f"{source}: size {list(card.size)} but the model's input {_fmt(shape)} has a fixed "
                                f"{what} of {shape[axis]} — set size to {[shape[a] for a in hw]}")
    elif any(shape[a] is None for a in hw):
        raise UserError(f"{source}: the model's input {_fmt(shape)} has a dynamic height/width; the card must give "
                        "size: [height, width] to feed images")


def resolve(card: ModelCard, model_path: str | Path, *, source: str = "card") -> ModelCard:
    """``card`` checked against the ONNX model, with its input name and (static) size filled in."""
    name, shape = input_shape(model_path, card.input)
    check(card, shape, source=source)
    size = card.size
    if size is None and len(shape) == 4:
        size = tuple(shape[2:4]) if card.layout is Layout.NCHW else tuple(shape[1:3])
    return card.model_copy(update={"input": name, "size": size})


def _fmt(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def draft(model_path: str | Path) -> str:
    """A commented YAML card for the ONNX model, from its graph: input name, shape, guessed layout."""
    name, shape = input_shape(model_path)
    layout, color, size = "NCHW", "RGB", None
    if len(shape) == 4:
        if shape[1] in (1, 3):
            layout, color, size = "NCHW", "GRAY" if shape[1] == 1 else "RGB", shape[2:4]
        elif shape[3] in (1, 3):
            layout, color, size = "NHWC", "GRAY" if shape[3] == 1 else "RGB", shape[1:3]
    size_line = (f"size: [{size[0]}, {size[1]}]" if size and None not in size
                 else "size: [224, 224]         # REQUIRED: the input's height/width are dynamic; pick the size to feed")
    mean, std = ("[0.0]", "[1.0]") if color == "GRAY" else ("[0.485, 0.456, 0.406]", "[0.229, 0.224, 0.225]")
    return f"""# Model card for {Path(model_path).name}, drafted by `edgedeploy card init` from the graph.
# Input {name!r}: {_fmt(shape)} (guessed layout {layout}). Check every value against how the model was trained.
input: {name}
{size_line}
layout: {layout}                  # NCHW or NHWC (guessed from where the 1 or 3 channels are)
color: {color}                     # RGB, BGR or GRAY: the channel order used in training
scale: 0.00392156862745      # pixel (0..255) * scale, then (x - mean) / std per channel
mean: {mean}   # ImageNet statistics: a guess, replace with yours
std: {std}
resize: stretch              # stretch | letterbox (keep ratio + pad_value) | crop (keep ratio + centre crop)
# resize_short: 256          # crop only: the short side before the centre crop
interpolation: linear        # nearest | linear | area | cubic | lanczos
pad_value: 114
task: none                   # classification | detection | segmentation | none (none: accuracy = agreement with FP32)
# output_format: yolo        # detection only: yolo | ssd | db | ctc
# labels: [class0, class1]   # classification: class names in output order
"""
