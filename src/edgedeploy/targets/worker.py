"""A :class:`Session` whose model runs in another interpreter (emulated aarch64, the RKNN venv), over :mod:`wire`.

The worker says hello (``{"ok": true, "version": ..., "inputs": [...], "outputs": [...]}``) and then
answers ``{"op": "run"}`` messages carrying arrays ``a0, a1, ...`` in input order. Tensor specs come
from ``like``, an open host session of the same model, so names, shapes and feed checks are the model's.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence

import numpy as np

from edgedeploy.engines.base import Session, TensorSpec
from edgedeploy.errors import InternalError, UserError
from edgedeploy.targets import wire

START_MESSAGE = "the {what} worker died on start: {last}"


class WorkerSession(Session):
    def __init__(self, args: Sequence[str], *, engine: str, what: str, like: Session | None = None,
                 notes: Sequence[str] = (), hello: dict | None = None):
        # stderr to a file, not a pipe: a chatty worker would fill a pipe nobody reads and block
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._what = what
        try:
            first = self.request(hello) if hello is not None else self._receive()[0]
        except InternalError:
            raise
        except UserError:
            self._stop()
            raise
        self.hello = first
        if like is not None:
            inputs, outputs = list(like.inputs), list(like.outputs)
        else:
            inputs = [TensorSpec(n, np.dtype(np.float32), ()) for n in first.get("inputs", [])]
            outputs = [TensorSpec(n, np.dtype(np.float32), ()) for n in first.get("outputs", [])]
        super().__init__(engine=engine, inputs=inputs, outputs=outputs, device="cpu",
                         notes=[n.format(**first) for n in notes])
        self._like = like

    def _receive(self) -> tuple[dict, dict]:
        try:
            header, arrays = wire.recv(self._proc.stdout)
        except (wire.WireError, ValueError):
            self._stop()
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace").strip().splitlines()
            raise InternalError(START_MESSAGE.format(what=self._what, last=err[-1] if err else "no message")) from None
        if not header.get("ok"):
            raise UserError(f"{self._what}: {header.get('error')}")
        return header, arrays

    def request(self, header: dict, arrays: dict | None = None) -> dict:
        """Send one message and return the worker's answer header (UserError when it says not ok)."""
        if self._proc is None:
            raise InternalError(f"this {self._what} session was released")
        wire.send(self._proc.stdin, header, arrays)
        answer, self._last_arrays = self._receive()
        return answer

    def check_feeds(self, feeds):
        if self._like is not None:
            return self._like.check_feeds(feeds)
        return {k: np.ascontiguousarray(v) for k, v in feeds.items()}

    def _run(self, feeds):
        names = [s.name for s in self.inputs] if self._like is not None else list(feeds)
        self.request({"op": "run"}, {f"a{i}": feeds[n] for i, n in enumerate(names)})
        outs = self._last_arrays
        result = [outs[f"a{i}"] for i in range(len(outs))]
        # ncnn and RKNN drop or add unit axes: give back the model's own ranks where they are static
        return [r.reshape(r.shape[0] if r.ndim else 1, *s.shape[1:]) if r.ndim != len(s.shape) and s.shape
                and None not in s.shape[1:] else r for r, s in zip(result, self.outputs)]

    def _stop(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()

    def _release(self):
        self._stop()
        self._stderr.close()
