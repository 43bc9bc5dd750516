"""OCR engines behind one interface (after OCRmyPDF's ``pluginspec.OcrEngine``, its null engine
and its engine-neutral ``OcrElement``).

* ``RapidOcrEngine`` (default): PP-OCR models shipped inside the rapidocr-onnxruntime package, so
  nothing is downloaded at run time. Field crops go straight to the recogniser (no detector:
  BASELINES.md, 0.56 s/page and the best accuracy); full pages use detector + recogniser with
  ``max_side_len`` 1400. One ONNX Runtime thread: parallelism comes from worker processes.
* ``TesseractEngine``: Tesseract ``chi_sim`` via pytesseract, psm 7 for single lines. Images are
  handed over as PIL images (pytesseract re-encodes numpy arrays to PNG, +1.3 s per page).
* ``FakeOcrEngine``: scripted answers for unit tests. ``NullOcrEngine``: reads nothing.

Engines load models, so ``get_engine`` creates each one once per process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
from PIL import Image

from forms import tools
from forms.errors import BaoxueError, MissingTool, ToolFailed, UnsupportedInput

log = logging.getLogger(__name__)

DEFAULT_ENGINE = "rapidocr"


class OcrFailed(BaoxueError):
    """An OCR engine was available but failed on an image."""

    code = "ocr_failed"
    http_status = 500


@dataclass(frozen=True)
class OcrText:
    """Text of one line. ``confidence`` in [0, 1]."""

    text: str
    confidence: float


@dataclass(frozen=True)
class OcrBox:
    """A text line found on a page. ``bbox``: (x0, y0, x1, y1) pixels, top-left origin;
    ``poly``: the (possibly rotated) quadrilateral the engine reported."""

    text: str
    confidence: float
    bbox: tuple[float, float, float, float]
    poly: tuple[tuple[float, float], ...] = ()


@runtime_checkable
class OcrEngine(Protocol):
    """What every OCR engine offers. Images are RGB ``uint8`` arrays (as ``PageImage.pixels``
    and ``Aligned.crop``) or grey arrays."""

    name: str

    def recognize_line(self, crop: np.ndarray) -> OcrText:
        """Read one line of text filling ``crop``."""
        ...

    def recognize_lines(self, crops: Sequence[np.ndarray]) -> list[OcrText]:
        """Read many single-line crops (engines may batch them)."""
        ...

    def recognize_page(self, image: np.ndarray) -> list[OcrBox]:
        """Find and read every text line on a page, top to bottom."""
        ...


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    return image


def _bbox(poly: Iterable[Sequence[float]]) -> tuple[float, float, float, float]:
    pts = np.asarray(list(poly), dtype=np.float64).reshape(-1, 2)
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def tighten(crop: np.ndarray, *, margin: float = 0.2) -> np.ndarray:
    """Cut a line crop down to its ink plus a margin of ``margin`` x the ink height. The
    recogniser scales every line to 48 px high; white space around the text costs resolution and
    made it drop the first character in trials."""
    from parsers.images import ink_mask, to_gray

    ink = ink_mask(to_gray(crop), contrast=0.7)
    ys, xs = np.nonzero(ink)
    if len(ys) < 4:
        return crop
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    m = int(round(margin * (y1 - y0))) + 2
    h, w = ink.shape
    return crop[max(0, y0 - m):min(h, y1 + m), max(0, x0 - m):min(w, x1 + m)]


class RapidOcrEngine:
    """RapidOCR (PP-OCRv4 on ONNX Runtime), recognition-only for crops."""

    name = "rapidocr"

    def __init__(self, *, threads: int = 1, max_side_len: int = 1400):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise MissingTool("rapidocr-onnxruntime is not installed (pip install -r requirements.txt)",
                              tool="rapidocr") from e
        self._ocr = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1, max_side_len=max_side_len,
                             print_verbose=False)
        self._lock = threading.Lock()  # ORT sessions are thread-safe, the wrapper's state is not

    def recognize_lines(self, crops: Sequence[np.ndarray]) -> list[OcrText]:
        if not crops:
            return []
        # The recogniser wants BGR, 3 channels.
        bgr = [cv2.cvtColor(_rgb(tighten(c)), cv2.COLOR_RGB2BGR) for c in crops]
        results: list = [None] * len(bgr)
        try:
            with self._lock:
                for group in self._groups(bgr):
                    got, _ = self._ocr.text_rec([bgr[i] for i in group])
                    for i, r in zip(group, got, strict=True):
                        results[i] = r
        except (RuntimeError, ValueError, cv2.error) as e:
            raise OcrFailed(f"RapidOCR could not read a text line: {e}") from e
        return [OcrText(str(text).strip(), float(score)) for text, score, *_ in results]

    # A batch is padded to its widest line: lines go into one recogniser call only while that
    # padding adds at most this share to their own widths.
    BATCH_PADDING = 0.2

    def _groups(self, lines: Sequence[np.ndarray]) -> list[list[int]]:
        """Lines (indices) in recogniser calls of similar width. The recogniser pads every line of a
        batch to the batch's widest (and to at least its input width, 320 px at 48 px high): one
        long field among short ones made them all as long (5 lines read as 5 x 1,100 px instead of
        3,500 px). Lines no wider than the input width are padded to it alone too, so they batch
        freely; a line is read as it would be alone, up to the small padding allowed."""
        _c, height, width = self._ocr.text_rec.rec_image_shape[:3]
        least = width / height
        cost = [max(least, ln.shape[1] / max(1, ln.shape[0])) for ln in lines]
        batch = int(self._ocr.text_rec.rec_batch_num)
        groups: list[list[int]] = []
        for i in sorted(range(len(lines)), key=lambda k: cost[k]):
            g = groups[-1] if groups else None
            if g is not None and len(g) < batch and \
                    cost[i] * (len(g) + 1) <= (1 + self.BATCH_PADDING) * (sum(cost[k] for k in g) + cost[i]):
                g.append(i)
            else:
                groups.append([i])
        return groups

    def recognize_line(self, crop: np.ndarray) -> OcrText:
        return self.recognize_lines([crop])[0]

    def recognize_page(self, image: np.ndarray) -> list[OcrBox]:
        bgr = cv2.cvtColor(_rgb(image), cv2.COLOR_RGB2BGR)
        try:
            with self._lock:
                result, _ = self._ocr(bgr)
        except (RuntimeError, ValueError, cv2.error) as e:
            raise OcrFailed(f"RapidOCR could not read the page: {e}") from e
        boxes = []
        for poly, text, score in result or []:
            pts = tuple((float(x), float(y)) for x, y in poly)
            boxes.append(OcrBox(str(text), float(score), _bbox(pts), pts))
        return boxes


TESSDATA_DIRS = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata")


class TesseractEngine:
    """Tesseract, ``chi_sim`` by default: single lines in-process through tesserocr when it is
    installed (one model load per process, ~50 ms a line instead of a tesseract process per crop,
    which made a second reading of every handwritten field unaffordable), pages and the rest
    through pytesseract. A tesseract process that times out is tried once more with twice the
    time before the call fails (``ToolFailed``, naming the limit)."""

    name = "tesseract"

    def __init__(self, *, lang: str = "chi_sim", timeout: float = 30.0):
        info = tools.probe("tesseract")
        if not info.installed:
            raise MissingTool("tesseract is not installed (run scripts/setup.sh)", tool="tesseract")
        import pytesseract

        self._tess = pytesseract
        try:
            langs = set(pytesseract.get_languages(config=""))
        except (pytesseract.TesseractError, OSError) as e:
            raise MissingTool(f"tesseract does not start: {e}", tool="tesseract") from e
        missing = [code for code in lang.split("+") if code not in langs]
        if missing:
            raise MissingTool(f"tesseract language data missing: {', '.join(missing)} "
                              "(install tesseract-ocr-chi-sim)", tool="tesseract")
        self.lang = lang
        self.timeout = timeout
        self.version = info.version
        self._api = self._in_process(lang)
        self._api_lock = threading.Lock()  # a TessBaseAPI serves one image at a time

    @staticmethod
    def _in_process(lang: str):
        """A tesserocr API on the system's language data, or None (pytesseract is used)."""
        import os

        try:
            import tesserocr
        except ImportError:
            return None
        dirs = [os.environ["TESSDATA_PREFIX"]] if os.environ.get("TESSDATA_PREFIX") else []
        for d in (*dirs, *TESSDATA_DIRS):
            if all(os.path.exists(os.path.join(d, f"{code}.traineddata")) for code in lang.split("+")):
                try:
                    return tesserocr.PyTessBaseAPI(path=d.rstrip("/") + "/", lang=lang, psm=tesserocr.PSM.SINGLE_LINE)
                except RuntimeError as e:
                    log.warning("tesserocr could not load %s from %s: %s", lang, d, e)
        return None

    def _data(self, image: np.ndarray, psm: int) -> dict:
        pil = Image.fromarray(_rgb(image))
        for attempt, limit in enumerate((self.timeout, 2 * self.timeout)):
            try:
                return self._tess.image_to_data(pil, lang=self.lang, config=f"--psm {psm}",
                                                output_type=self._tess.Output.DICT, timeout=limit)
            except RuntimeError as e:  # pytesseract signals its timeout with a bare RuntimeError
                if attempt == 0:
                    log.warning("tesseract timed out after %.0f s; trying once more with %.0f s", limit, 2 * limit)
                    continue
                raise ToolFailed(f"tesseract did not finish within {self.timeout:.0f} s, nor within "
                                 f"{limit:.0f} s when tried again", tool="tesseract") from e
            except self._tess.TesseractError as e:
                raise OcrFailed(f"tesseract failed: {e}") from e
        raise AssertionError("unreachable")

    @staticmethod
    def _join(words: list[str]) -> str:
        # chi_sim puts spaces between Chinese characters; keep a space only between Latin words.
        out = ""
        for w in words:
            if out and out[-1].isascii() and out[-1].isalnum() and w[:1].isascii() and w[:1].isalnum():
                out += " "
            out += w
        return out

    def recognize_line(self, crop: np.ndarray) -> OcrText:
        if self._api is not None:
            with self._api_lock:
                self._api.SetImage(Image.fromarray(_rgb(crop)))
                text = self._api.GetUTF8Text()
                conf = self._api.MeanTextConf()
            words = text.split()
            if not words:
                return OcrText("", 0.0)
            return OcrText(self._join(words), max(0.0, float(conf)) / 100.0)
        data = self._data(crop, 7)
        words = [(t.strip(), float(c)) for t, c in zip(data["text"], data["conf"], strict=False) if t.strip()]
        if not words:
            return OcrText("", 0.0)
        conf = [c for _, c in words if c >= 0]
        return OcrText(self._join([t for t, _ in words]), (sum(conf) / len(conf) / 100.0) if conf else 0.0)

    def recognize_lines(self, crops: Sequence[np.ndarray]) -> list[OcrText]:
        return [self.recognize_line(c) for c in crops]

    def recognize_page(self, image: np.ndarray) -> list[OcrBox]:
        data = self._data(image, 3)
        lines: dict[tuple, list[int]] = {}
        for i, text in enumerate(data["text"]):
            if text.strip():
                key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
                lines.setdefault(key, []).append(i)
        boxes = []
        for idx in lines.values():
            x0 = min(data["left"][i] for i in idx)
            y0 = min(data["top"][i] for i in idx)
            x1 = max(data["left"][i] + data["width"][i] for i in idx)
            y1 = max(data["top"][i] + data["height"][i] for i in idx)
            conf = [float(data["conf"][i]) for i in idx if float(data["conf"][i]) >= 0]
            text = self._join([data["text"][i].strip() for i in idx])
            boxes.append(OcrBox(text, (sum(conf) / len(conf) / 100.0) if conf else 0.0,
                                (float(x0), float(y0), float(x1), float(y1))))
        boxes.sort(key=lambda b: (b.bbox[1], b.bbox[0]))
        return boxes


class NullOcrEngine:
    """Reads nothing (confidence 0), like OCRmyPDF's null engine: for runs without OCR."""

    name = "none"

    def recognize_line(self, crop: np.ndarray) -> OcrText:
        return OcrText("", 0.0)

    def recognize_lines(self, crops: Sequence[np.ndarray]) -> list[OcrText]:
        return [OcrText("", 0.0) for _ in crops]

    def recognize_page(self, image: np.ndarray) -> list[OcrBox]:
        return []


class FakeOcrEngine:
    """Scripted OCR for unit tests: answers come from ``lines`` in order (strings or
    ``OcrText``), or from ``func(crop)``; ``page`` is returned by ``recognize_page``. Every
    crop seen is kept in ``calls``."""

    name = "fake"

    def __init__(self, lines: Iterable[str | OcrText] = (), *, confidence: float = 0.99,
                 func: Callable[[np.ndarray], str | OcrText] | None = None, page: Sequence[OcrBox] = ()):
        self._lines = [x if isinstance(x, OcrText) else OcrText(x, confidence) for x in lines]
        self._confidence = confidence
        self._func = func
        self._page = list(page)
        self.calls: list[np.ndarray] = []

    def recognize_line(self, crop: np.ndarray) -> OcrText:
        self.calls.append(crop)
        if self._func is not None:
            out = self._func(crop)
            return out if isinstance(out, OcrText) else OcrText(out, self._confidence)
        if not self._lines:
            raise AssertionError("FakeOcrEngine: no scripted text left")
        return self._lines.pop(0)

    def recognize_lines(self, crops: Sequence[np.ndarray]) -> list[OcrText]:
        return [self.recognize_line(c) for c in crops]

    def recognize_page(self, image: np.ndarray) -> list[OcrBox]:
        self.calls.append(image)
        return list(self._page)


_FACTORIES: dict[str, Callable[[], OcrEngine]] = {
    "rapidocr": RapidOcrEngine,
    "tesseract": TesseractEngine,
    "none": NullOcrEngine,
}
_ENGINES: dict[str, OcrEngine] = {}
_ENGINES_LOCK = threading.Lock()


def available_engines() -> list[str]:
    """Names accepted by ``get_engine``."""
    return sorted(_FACTORIES)


def get_engine(name: str = DEFAULT_ENGINE) -> OcrEngine:
    """The process-wide engine called ``name`` (created on first use: model loading is slow).
    Raises ``UnsupportedInput`` for an unknown name and ``MissingTool`` if it is not installed."""
    key = (name or DEFAULT_ENGINE).strip().lower()
    if key not in _FACTORIES:
        raise UnsupportedInput(f"unknown OCR engine {name!r}; choose one of {', '.join(available_engines())}")
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            log.info("loading OCR engine %s", key)
            engine = _ENGINES[key] = _FACTORIES[key]()
        return engine


def split_lines(crop: np.ndarray, *, min_gap_px: int = 3) -> list[np.ndarray]:
    """Split a multi-line field crop into single-line crops along blank rows (the recogniser
    reads one line at a time). A crop with one line comes back as ``[crop]``."""
    from parsers.images import ink_mask, to_gray

    ink = ink_mask(to_gray(crop), contrast=0.7)
    rows = ink.mean(axis=1) > 0.002
    bands, start, gap = [], None, 0
    for y, on in enumerate(rows):
        if on:
            if start is None:
                start = y
            gap = 0
        elif start is not None:
            gap += 1
            if gap >= min_gap_px:
                bands.append((start, y - gap + 1))
                start, gap = None, 0
    if start is not None:
        bands.append((start, len(rows) - gap))
    bands = [(a, b) for a, b in bands if b - a >= 4]
    if len(bands) <= 1:
        return [crop]
    h = crop.shape[0]
    return [crop[max(0, a - 3):min(h, b + 3)] for a, b in bands]
