"""Models edgedeploy has never seen, in plain torch, small so that tests stay fast.

Random initialisation alone gives near-constant outputs (activations fade through the layers),
so :func:`settle` sets every BatchNorm's statistics from data: outputs then depend on inputs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SIZE = 64  # input height and width of the image models


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a, self.b = _cbr(c, c), nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.b(self.a(x)))


class ResNetClassifier(nn.Module):
    """Stem, two stages of residual blocks, global pool, Flatten, Linear: ``classes`` logits."""

    def __init__(self, classes: int = 4, width: int = 16, size: int = SIZE):
        super().__init__()
        self.features = nn.Sequential(_cbr(3, width, 2), Residual(width), _cbr(width, 2 * width, 2),
                                      Residual(2 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        return self.fc(self.features(x))


class TransformerEncoder(nn.Module):
    """Patch embedding (8x8), two pre-norm encoder layers (multi-head attention + LayerNorm + MLP), mean-pooled head."""

    def __init__(self, classes: int = 4, dim: int = 32, patch: int = 8, size: int = SIZE):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2, dim) * 0.1)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.encoder(t)).mean(1))


class YoloDetector(nn.Module):
    """YOLO-style: a strided backbone, then a 1x1 head whose sigmoid outputs are scaled to pixels.

    Output ``N x cells x (4 + 1 + classes)``: box centre = (sigmoid * 2 - 0.5 + grid) * stride,
    size = (sigmoid * 2)^2 * anchor — pixel values in the hundreds beside scores in 0..1, the
    wide-range tensor that breaks plain INT8.
    """

    def __init__(self, classes: int = 3, width: int = 16, anchor: float = 24.0, size: int = SIZE):
        super().__init__()
        self.backbone = nn.Sequential(_cbr(3, width, 2), _cbr(width, width), _cbr(width, 2 * width, 2),
                                      _cbr(2 * width, 2 * width, 2))
        self.head = nn.Conv2d(2 * width, 5 + classes, 1)
        self.stride, self.anchor = 8, anchor
        g = size // self.stride
        ys, xs = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
        self.register_buffer("grid", torch.stack([xs, ys], -1).reshape(1, g * g, 2).float())

    def forward(self, x):
        p = self.head(self.backbone(x)).flatten(2).transpose(1, 2).sigmoid()  # N x cells x (5 + classes)
        xy = (p[..., 0:2] * 2 - 0.5 + self.grid) * self.stride
        wh = (p[..., 2:4] * 2) ** 2 * self.anchor
        return torch.cat([xy, wh, p[..., 4:]], -1)


class UNet(nn.Module):
    """Two-level U-Net: encoder convs, bilinear upsampling, skip concatenations, per-pixel ``classes`` logits."""

    def __init__(self, classes: int = 3, width: int = 8, size: int = SIZE):
        super().__init__()
        self.e1, self.e2, self.e3 = _cbr(3, width), _cbr(width, 2 * width, 2), _cbr(2 * width, 4 * width, 2)
        self.d2, self.d1 = _cbr(6 * width, 2 * width), _cbr(3 * width, width)
        self.out = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        d2 = self.d2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="bilinear", align_corners=False), e2], 1))
        d1 = self.d1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear", align_corners=False), e1], 1))
        return self.out(d1)


MODELS = {"resnet": ResNetClassifier, "transformer": TransformerEncoder, "yolo": YoloDetector, "unet": UNet}


def images(n: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """``n`` BGR uint8 images with structure (gradients, rectangles, discs), deterministic from ``seed``."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        base = (rng.uniform(0, 255, 3)[None, None] * (xx[..., None] / size) + rng.uniform(0, 120, 3)).clip(0, 255)
        img = np.ascontiguousarray(base.astype(np.uint8))
        for _ in range(rng.integers(1, 4)):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            x0, y0 = (int(v) for v in rng.integers(0, size - 8, 2))
            s = int(rng.integers(6, size // 2))
            if rng.random() < 0.5:
                cv2.rectangle(img, (x0, y0), (x0 + s, y0 + s), c, -1)
            else:
                cv2.circle(img, (x0, y0), s // 2, c, -1)
        out[i] = img
    return out


def to_input(imgs: np.ndarray) -> torch.Tensor:
    """BGR uint8 images → the models' input: RGB, /255, ImageNet mean/std, NCHW (the card in :data:`CARD`)."""
    x = imgs[..., ::-1].astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


CARD = {"size": [SIZE, SIZE], "layout": "NCHW", "color": "RGB", "scale": 1 / 255.0,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "stretch"}


@torch.no_grad()
def settle(model: nn.Module, n: int = 32, seed: int = 0, size: int = SIZE) -> nn.Module:
    """Set every BatchNorm's running statistics from ``n`` images (cumulative average), then eval mode."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    x = to_input(images(n, seed, size))
    model(x)
    model.eval()
    fc = getattr(model, "fc", None) or getattr(model, "head", None)
    if isinstance(fc, nn.Linear):  # centre the logits on the data, so that every class gets predicted
        fc.bias -= model(x).mean(0)
    return model


def build(name: str, seed: int = 0, size: int = SIZE, **kwargs) -> nn.Module:
    """Test model ``name`` (see :data:`MODELS`) for ``size`` x ``size`` inputs, weights from ``seed``,
    BatchNorm statistics from data; ``kwargs`` go to the model (``width``, ``dim``, ...)."""
    torch.manual_seed(seed)
    return settle(MODELS[name](size=size, **kwargs), size=size)


def factory() -> nn.Module:
    """For ``module.py:factory`` on the command line: the residual classifier."""
    return build("resnet")


def quadrant_labels(imgs: np.ndarray) -> np.ndarray:
    """A learnable task for the classifiers: which quadrant of the image is brightest (4 classes)."""
    h, w = imgs.shape[1:3]
    g = imgs.astype(np.float32).mean(-1)
    q = np.stack([g[:, :h // 2, :w // 2].mean((1, 2)), g[:, :h // 2, w // 2:].mean((1, 2)),
                  g[:, h // 2:, :w // 2].mean((1, 2)), g[:, h // 2:, w // 2:].mean((1, 2))], 1)
    return q.argmax(1)


def train(model: nn.Module, steps: int = 150, size: int = SIZE, batch: int = 32, seed: int = 0) -> float:
    """Train a classifier on :func:`quadrant_labels` (confident decisions, as a trained model has);
    BatchNorm statistics come from the training data. Returns the accuracy on fresh images."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        imgs = images(batch, 10_000 + step, size)
        loss = F.cross_entropy(model(to_input(imgs)), torch.from_numpy(quadrant_labels(imgs)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = images(128, 99, size)
    with torch.no_grad():
        return float((model(to_input(test)).argmax(-1).numpy() == quadrant_labels(test)).mean())
