"""PyTorch module → ONNX (torch.onnx.export, TorchScript exporter), cached by content hash."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from pathlib import Path

from edgedeploy.errors import ConversionError, EngineMissing
from edgedeploy.ingest.model import Model
from edgedeploy.zoo import cache_dir

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17


def from_torch(module, example_inputs, *, name: str = "torch_model", input_names: list[str] | None = None,
               output_names: list[str] | None = None, dynamic_axes: dict | None = None,
               opset: int = DEFAULT_OPSET, out: str | Path | None = None) -> Model:
    """Export ``module`` (in eval mode) with ``example_inputs`` (a tensor or tuple of tensors) to ONNX.

    The file goes to ``out`` or to the cache, keyed by the weights, the example shapes and the
    export options. An operator the exporter cannot handle raises :class:`ConversionError`
    naming it.
    """
    try:
        import torch
    except ImportError:
        raise EngineMissing("exporting a PyTorch module needs torch: pip install 'edgedeploy[torch]'") from None
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    module = module.eval()
    if out is None:
        h = hashlib.sha256()
        for k, v in module.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        h.update(repr((type(module).__name__, [tuple(x.shape) for x in example_inputs], input_names,
                       output_names, dynamic_axes, opset)).encode())
        out = cache_dir() / "torch" / f"{name}-{h.hexdigest()[:16]}.onnx"
    out = Path(out)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".part-{os.getpid()}")
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, example_inputs, str(tmp), dynamo=False, opset_version=opset,
                                  input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise ConversionError(describe_failure(name, exc, opset)) from None
        os.replace(tmp, out)
    from edgedeploy.ingest.model import load_model

    model = load_model(out)
    return Model(name=name, format="onnx", path=model.path)


def describe_failure(name: str, exc: Exception, opset: int) -> str:
    text = " ".join(str(exc).split())
    op = re.search(r"operator '?([\w:.]+)'?", text)
    where = f"operator {op.group(1)}" if op else "an operator"
    return (f"torch.onnx.export could not convert {name} at opset {opset}: {where}: {text[:300]}; "
            "try another opset (opset=...) or replace that operation in the module")
