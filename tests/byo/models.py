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


SHAPES = ("rectangle", "disc")  # pixel classes 1 and 2 of the segmentation task (0: background)


def scene(n: int, seed: int = 0, size: int = SIZE) -> tuple[np.ndarray, np.ndarray, list[list[tuple]]]:
    """``n`` BGR uint8 images with structure (gradients, rectangles, discs), deterministic from ``seed``,
    with what they show: per-pixel class masks (0 background, 1 rectangle, 2 disc; later shapes cover
    earlier ones) and per image the objects ``(class, cx, cy, w, h)`` in pixels (class 0 rectangle, 1 disc)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), np.int64)
    objects: list[list[tuple]] = []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        base = (rng.uniform(0, 255, 3)[None, None] * (xx[..., None] / size) + rng.uniform(0, 120, 3)).clip(0, 255)
        img = np.ascontiguousarray(base.astype(np.uint8))
        mask = np.zeros((size, size), np.uint8)
        objs = []
        for _ in range(rng.integers(1, 4)):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            x0, y0 = (int(v) for v in rng.integers(0, size - 8, 2))
            s = int(rng.integers(6, size // 2))
            if rng.random() < 0.5:
                cv2.rectangle(img, (x0, y0), (x0 + s, y0 + s), c, -1)
                cv2.rectangle(mask, (x0, y0), (x0 + s, y0 + s), 1, -1)
                x1, y1 = min(x0 + s, size - 1), min(y0 + s, size - 1)
                objs.append((0, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0 + 1, y1 - y0 + 1))
            else:
                cv2.circle(img, (x0, y0), s // 2, c, -1)
                cv2.circle(mask, (x0, y0), s // 2, 2, -1)
                xa, xb, ya, yb = max(0, x0 - s // 2), min(size - 1, x0 + s // 2), max(0, y0 - s // 2), min(size - 1, y0 + s // 2)
                objs.append((1, (xa + xb) / 2, (ya + yb) / 2, xb - xa + 1, yb - ya + 1))
        out[i], masks[i] = img, mask
        objects.append(objs)
    return out, masks, objects


def images(n: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """``n`` BGR uint8 images of :func:`scene` (the pictures only)."""
    return scene(n, seed, size)[0]


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


def build(name: str, seed: int = 0, size: int = SIZE, *, fitted: bool = True, **kwargs) -> nn.Module:
    """Test model ``name`` (see :data:`MODELS`) for ``size`` x ``size`` inputs, weights from ``seed``,
    BatchNorm statistics from data, and (``fitted``) the last layer fitted to the task the generated
    images carry (:func:`fit`); ``kwargs`` go to the model (``width``, ``dim``, ...)."""
    torch.manual_seed(seed)
    model = settle(MODELS[name](size=size, **kwargs), size=size)
    return fit(model, name, size=size) if fitted else model


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


PROBE_IMAGES = 128  # images the last layer is fitted on (seeds 10_000..)
MARGIN = 4.0  # target logit for "yes" (-MARGIN for "no"): decisions as confident as a trained model's


def _ridge(feats: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares with a little ridge: ``targets ≈ feats @ w.T + b`` → ``(w, b)``."""
    f = np.concatenate([feats, np.ones((len(feats), 1))], 1).astype(np.float64)
    gram = f.T @ f
    w = np.linalg.solve(gram + 1e-3 * np.trace(gram) / len(gram) * np.eye(len(gram)), f.T @ targets)
    return w[:-1].T.astype(np.float32), w[-1].astype(np.float32)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.05, 0.95)
    return np.log(p / (1 - p))


@torch.no_grad()
def fit(model: nn.Module, name: str, size: int = SIZE, n: int = PROBE_IMAGES) -> nn.Module:
    """Fit the last layer in closed form (a linear probe, ridge least squares) on the features of ``n``
    generated images, for the task those images carry: classifiers (``resnet``, ``transformer``):
    :func:`colour_labels`; ``unet``: the shapes' pixel masks; ``yolo``: objectness per cell, and the
    box and class of the object whose centre falls in it. Targets are logits of ±:data:`MARGIN`, so
    outputs depend on the inputs with well-separated decisions, as a trained model's do — in well
    under a second, where gradient training took minutes on a shared 2-core machine."""
    last = {"resnet": "fc", "transformer": "head", "unet": "out", "yolo": "head"}[name]
    layer = getattr(model, last)
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    imgs, masks, objects = scene(n, 10_000, size)
    model(to_input(imgs))
    hook.remove()
    f = seen[0].numpy()
    classes = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if name in ("resnet", "transformer"):
        w, b = _ridge(f, MARGIN * (2 * np.eye(classes)[colour_labels(imgs)] - 1))
    elif name == "unet":
        px, lab = f.transpose(0, 2, 3, 1).reshape(-1, f.shape[1]), masks.reshape(-1)
        rng = np.random.default_rng(0)  # as many pixels of each class (background would swamp the shapes)
        k = min(np.bincount(lab, minlength=3).min(), 4000)
        pick = np.concatenate([rng.choice(np.flatnonzero(lab == c), k, replace=False) for c in range(3)])
        w, b = _ridge(px[pick], MARGIN * (2 * np.eye(classes)[lab[pick]] - 1))
    else:
        g, stride = f.shape[-1], model.stride
        cells = f.transpose(0, 2, 3, 1).reshape(n, g * g, -1)
        obj = -MARGIN * np.ones((n, g * g))
        pos, tgt = [], []
        for i, objs in enumerate(objects):
            for c, cx, cy, bw, bh in objs:
                gx, gy = min(int(cx // stride), g - 1), min(int(cy // stride), g - 1)
                obj[i, gy * g + gx] = MARGIN
                pos.append(cells[i, gy * g + gx])
                xy = _logit((np.array([cx / stride - gx, cy / stride - gy]) + 0.5) / 2)
                wh = _logit(np.sqrt(np.array([bw, bh]) / model.anchor) / 2)
                tgt.append(np.concatenate([xy, wh, MARGIN * (2 * np.eye(classes - 5)[min(c, classes - 6)] - 1)]))
        w_obj, b_obj = _ridge(cells.reshape(n * g * g, -1), obj.reshape(-1, 1))
        w_rest, b_rest = _ridge(np.array(pos), np.array(tgt))
        w = np.concatenate([w_rest[:4], w_obj, w_rest[4:]])
        b = np.concatenate([b_rest[:4], b_obj, b_rest[4:]])
    layer.weight.copy_(torch.from_numpy(w).reshape(layer.weight.shape))
    layer.bias.copy_(torch.from_numpy(b))
    return model.eval()


def colour_labels(imgs: np.ndarray) -> np.ndarray:
    """The classifiers' task: the image's dominant colour channel (0 blue, 1 green, 2 red; BGR order),
    or 3 when it is mostly grey (channel means within 12 of each other) — a global property that
    pooled features carry."""
    means = imgs.astype(np.float32).mean((1, 2))
    return np.where(means.max(1) - means.min(1) < 12, 3, means.argmax(1))


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
