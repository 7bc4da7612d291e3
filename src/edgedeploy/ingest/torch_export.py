"""PyTorch in every form → ONNX: an ``nn.Module``, ``module.py:factory``, TorchScript ``.pt``, ``ExportedProgram`` ``.pt2``.

Export uses torch's current (dynamo) exporter; where it fails, the TorchScript exporter, with
the reason shown. Dynamic axes come from the model card (``dynamic: {batch: [1, 8], ...}``).
The exported model's outputs are checked against torch's on the example input before anything
else runs; an export that fails names the operator and the exporter's message. The file goes
where ``out`` says (or, when not given, to a content-keyed file in edgedeploy's cache — the
path is logged).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np

from edgedeploy.errors import ConversionError, EngineMissing, UserError
from edgedeploy.ingest.model import Model
from edgedeploy.zoo import cache_dir

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
TORCH_SUFFIXES = (".pt", ".pth", ".pt2")
FACTORY = r".+\.py:[A-Za-z_]\w*"  # module.py:factory on the command line
PARITY_RTOL = 1e-3  # exported vs torch: max |diff| <= rtol * max |torch output| (+ 1e-5)


def _torch():
    try:
        import torch
    except ImportError:
        raise EngineMissing("exporting a PyTorch model needs torch: pip install 'edgedeploy[torch]'") from None
    return torch


def is_torch_source(model) -> bool:
    """True for an ``nn.Module``, a ``.pt``/``.pth``/``.pt2`` path, or ``file.py:factory``."""
    if hasattr(model, "state_dict") and callable(model):
        return True
    text = str(model)
    return Path(text).suffix.lower() in TORCH_SUFFIXES or bool(re.fullmatch(FACTORY, text))


def load_module(source: str | Path):
    """The ``nn.Module`` (or ``ExportedProgram``) in ``source``: ``.pt`` (TorchScript), ``.pt2``, ``file.py:factory``."""
    torch = _torch()
    text = str(source)
    if re.fullmatch(FACTORY, text):
        file, func = text.rsplit(":", 1)
        if not Path(file).is_file():
            raise UserError(f"model {text!r}: {file} not found; expected module.py:factory with factory() "
                            "returning an nn.Module")
        spec = importlib.util.spec_from_file_location(f"edgedeploy_user_{Path(file).stem}", file)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
            factory = getattr(mod, func)
            module = factory()
        except AttributeError as exc:
            raise UserError(f"model {text!r}: {exc}; expected a function {func}() in {file}") from None
        except Exception as exc:  # the user's code: any exception is reported in one line
            raise UserError(f"model {text!r}: {func}() raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                            ) from None
        if not isinstance(module, torch.nn.Module):
            raise UserError(f"model {text!r}: {func}() returned {type(module).__name__}; expected a torch.nn.Module")
        return module
    path = Path(text)
    if not path.is_file():
        raise UserError(f"model {text!r} not found")
    if path.suffix.lower() == ".pt2":
        try:
            return torch.export.load(str(path))
        except Exception as exc:  # torch raises several types for a file that is not an ExportedProgram archive
            raise UserError(f"{path} is not a torch.export ExportedProgram (.pt2): {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:160]}; save one with torch.export.save") from None
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # a pickled state_dict or whole module is not TorchScript
        raise UserError(f"{path} is not a TorchScript file ({type(exc).__name__}); save the model with "
                        "torch.jit.script(model).save(path) or torch.jit.trace(...), export a .pt2 with "
                        "torch.export, or give module.py:factory") from None


def example_from_card(card, batch: int = 1):
    """A random input tensor of the card's size, layout and channels (seeded)."""
    torch = _torch()
    if card is None or card.size is None:
        raise UserError("exporting a PyTorch model needs its input size: give a model card with size: [height, width] "
                        "(`edgedeploy card init` drafts one from an ONNX file; for PyTorch write MODEL.card.yaml by hand)")
    h, w = card.size
    shape = (batch, card.channels, h, w) if card.layout.value == "NCHW" else (batch, h, w, card.channels)
    return torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


def _dynamic(card):
    """(dynamo dynamic_shapes, TorchScript dynamic_axes) from the card's ``dynamic`` ranges, or (None, None)."""
    if card is None or not card.dynamic:
        return None, None
    from torch.export import Dim

    axes = {"batch": 0, "height": 2 if card.layout.value == "NCHW" else 1, "width": 3 if card.layout.value == "NCHW" else 2}
    dims = {axes[k]: Dim(k, min=lo, max=hi) for k, (lo, hi) in card.dynamic.items()}
    return ({"x": dims}, {"input": {axes[k]: k for k in card.dynamic}})


def from_torch(module, example_inputs=None, *, name: str = "torch_model", card=None, out: str | Path | None = None,
               opset: int = DEFAULT_OPSET, input_names: list[str] | None = None,
               output_names: list[str] | None = None, dynamic_axes: dict | None = None,
               report: list[str] | None = None) -> Model:
    """Export ``module`` (``nn.Module``, TorchScript or ``ExportedProgram``) to ONNX and check it against torch.

    example_inputs: a tensor or tuple (default: from ``card``'s size). out: the ONNX file to write
    (default: edgedeploy's cache, keyed by weights and options; the path is logged). report: a list
    that receives one line per step (exporter used, fallback reason, parity).
    """
    torch = _torch()
    notes = report if report is not None else []
    if example_inputs is None:
        example_inputs = example_from_card(card)
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    program = module if isinstance(module, torch.export.ExportedProgram) else None
    runnable = program.module() if program is not None else module.eval()
    script = program is None and isinstance(module, torch.jit.ScriptModule)
    unconverted = None  # why a TorchScript module could not become an ExportedProgram
    if script:
        # torch.export fixes an axis whose example size is 1: a dynamic batch is converted from two samples
        sample = tuple(torch.cat([x, x]) for x in example_inputs) if card and "batch" in (card.dynamic or {}) else (
            example_inputs)
        program, unconverted = _script_to_program(torch, module, sample, notes)
    if out is None:
        h = hashlib.sha256()
        for k, v in runnable.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        h.update(repr((type(module).__name__, [tuple(x.shape) for x in example_inputs], input_names, output_names,
                       dynamic_axes, opset, card.dynamic if card else None)).encode())
        out = cache_dir() / "torch" / f"{name}-{h.hexdigest()[:16]}.onnx"
        log.warning("exporting %s to %s (pass out= to choose where)", name, out)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part-{os.getpid()}")
    shapes, axes = _dynamic(card)
    names = input_names or ["input"]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                if unconverted:  # torch.export takes no ScriptModule: straight to the TorchScript exporter
                    raise RuntimeError(unconverted)
                # the converted TorchScript program has every axis dynamic (Dim.AUTO): its module is
                # exported again with the card's axes; a user's ExportedProgram keeps its own
                target = program.module() if program is not None and (shapes or program is not module) else (
                    program or runnable)
                _dynamo_export(torch, target, example_inputs, tmp, opset, names, output_names, shapes)
                notes.append(f"exported with torch.onnx dynamo exporter (torch {torch.__version__}, opset {opset})")
            except Exception as exc:  # the exporter raises many types; the reason is shown and the fallback tried
                reason = describe_failure(name, exc, opset, "the dynamo exporter")
                notes.append(f"dynamo exporter failed ({reason}); fell back to the TorchScript exporter")
                log.warning("%s", notes[-1])
                torch.onnx.export(runnable, example_inputs, str(tmp), dynamo=False, opset_version=min(opset, 17),
                                  input_names=names, output_names=output_names, dynamic_axes=dynamic_axes or axes)
                notes.append(f"exported with the TorchScript exporter (opset {min(opset, 17)})")
        ref = runnable(*example_inputs)
        diff = check_outputs(tmp, example_inputs, ref, name)
        notes.append(f"exported outputs match torch's on the example input (max |diff| {diff:.2e})")
    except ConversionError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # the fallback failed too: name the operator, and say why dynamo failed first
        tmp.unlink(missing_ok=True)
        first = next((n for n in notes if n.startswith("dynamo exporter failed")), "")
        hint = (f"; {unconverted[:200]}: a scripted module whose control flow depends on shapes or modes "
                "(prim::If) exports once traced — save it with torch.jit.trace, as a .pt2 (torch.export.save), "
                "or give module.py:factory" if unconverted else (f" ({first[:300]})" if first else ""))
        raise ConversionError(describe_failure(name, exc, min(opset, 17), "the TorchScript exporter") + hint
                              ) from None
    os.replace(tmp, out)
    from edgedeploy.ingest.model import load_model

    return Model(name=name, format="onnx", path=load_model(out).path)


def _script_to_program(torch, module, example_inputs, notes: list[str]):
    """TorchScript → ``(ExportedProgram, None)`` (torch's TS2EP converter), or ``(None, the reason)``.

    torch.export refuses ScriptModules, and the TorchScript exporter loses the tensor ranks a
    loaded ``.pt`` no longer records (``unflatten`` in attention: "transpose for tensor of unknown
    rank"); the converter rebuilds the graph as aten ops that the dynamo exporter takes.
    """
    try:
        from torch._export.converter import TS2EPConverter

        program = TS2EPConverter(module, tuple(example_inputs)).convert()
    except Exception as exc:  # the converter raises many types; the TorchScript exporter is tried next
        reason = (f"TorchScript → ExportedProgram conversion failed ({type(exc).__name__}: "
                  f"{' '.join(str(exc).split())[:200]})")
        log.warning("%s", reason)
        return None, reason
    notes.append("converted the TorchScript module to an ExportedProgram (torch._export.converter.TS2EPConverter)")
    return program, None


def _dynamo_export(torch, model, example_inputs, path, opset, names, output_names, shapes):
    kwargs = {"dynamic_shapes": shapes} if shapes and not isinstance(model, torch.export.ExportedProgram) else {}
    if kwargs:
        # dynamo names dynamic shapes by the forward's argument names
        import inspect

        arg = next(iter(inspect.signature(model.forward).parameters))
        kwargs["dynamic_shapes"] = {arg: shapes["x"]}
    prog = torch.onnx.export(model, example_inputs, dynamo=True, opset_version=opset, input_names=names,
                             output_names=output_names, optimize=True, verbose=False, **kwargs)
    prog.save(str(path))


def check_outputs(path: Path, example_inputs, ref, name: str) -> float:
    """Max |diff| between ONNX Runtime on ``path`` and torch's ``ref`` outputs; ConversionError when they differ."""
    import onnxruntime as ort

    torch = _torch()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feeds = {i.name: x.detach().cpu().numpy() for i, x in zip(sess.get_inputs(), example_inputs)}
    got = sess.run(None, feeds)
    refs = [r for r in (ref if isinstance(ref, (tuple, list)) else (ref,)) if isinstance(r, torch.Tensor)]
    worst = 0.0
    for i, (g, r) in enumerate(zip(got, refs)):
        r = r.detach().cpu().numpy()
        if g.shape != r.shape:
            raise ConversionError(f"exported {name}: output {i} has shape {g.shape}, torch gives {r.shape}")
        diff = float(np.max(np.abs(g - r))) if r.size else 0.0
        if diff > PARITY_RTOL * float(np.max(np.abs(r)) if r.size else 0.0) + 1e-5:
            raise ConversionError(f"exported {name}: output {i} differs from torch's by up to {diff:.3g} "
                                  f"(torch's values reach {float(np.max(np.abs(r))):.3g}); the export is wrong — "
                                  "try the other exporter or another opset")
        worst = max(worst, diff)
    return worst


def describe_failure(name: str, exc: Exception, opset: int, exporter: str = "torch.onnx.export") -> str:
    text = " ".join(str(exc).split())
    op = re.search(r"(aten::\w+|aten\.\w+(?:\.\w+)?|operator '?([\w:.]+)'?|ONNX export of (\w+))", text)
    where = f"operator {op.group(3) or op.group(2) or op.group(1)}" if op else "an operator"
    return (f"{exporter} could not convert {name} at opset {opset}: {where}: {type(exc).__name__}: {text[:300]}; "
            "try another opset (opset=...) or replace that operation in the module")


def resolve_source(model, *, card=None, workdir: Path, progress=lambda msg: None):
    """(model for :func:`load_model`, model card or None, the FP32 ONNX export or None) for any accepted ``model``.

    PyTorch forms are exported into ``workdir`` (checked against torch); the card is ``card``, or
    ``MODEL.card.yaml`` beside the model, or the zoo model's own.
    """
    from edgedeploy import cards

    path_like = isinstance(model, (str, Path))
    if path_like and re.fullmatch(FACTORY, str(model)):
        found = cards.find(str(model).rsplit(":", 1)[0], card)  # module.card.yaml beside module.py
    else:
        found = cards.find(model if path_like else None, card)
    if not is_torch_source(model):
        if found is None and path_like:
            from edgedeploy.zoo import BY_NAME

            if str(model) in BY_NAME and not Path(str(model)).exists():
                found = cards.from_zoo(BY_NAME[str(model)])
        return model, found, None
    progress("exporting the PyTorch model to ONNX")
    module = load_module(model) if path_like else model
    name = Path(str(model).split(":")[0]).stem if path_like else type(model).__name__
    out = Path(workdir) / f"{name}.onnx"
    steps: list[str] = []
    from_torch(module, card=found, name=name, out=out, report=steps)
    for s in steps:
        progress(s)
    return out, found, out
