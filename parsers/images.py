"""Loading uploaded scans and photos as page images.

``load_pages`` turns one upload (PNG, JPEG, multi-page TIFF or an image-only PDF) into a list of
``PageImage`` objects: RGB ``uint8`` pixel arrays (PIL channel order, *not* OpenCV's BGR) with the
resolution when the file states a believable one. Everything that can go wrong with the file is
raised as a typed error naming the file, the page and why, before any pixel work starts:

* the kind is recognised from the first bytes, never from the file name;
* image size is checked from the header, before decoding, so a 20000x20000 image is refused
  without allocating 1.2 GB (Pillow's own decompression-bomb guard is wrapped as well);
* PDFs are rasterised with ``pdftoppm`` through ``forms.tools.run`` after their page sizes have
  been checked with pypdf.
"""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from forms import tools
from forms.errors import MissingTool, ToolFailed, UnreadableDocument, UnsupportedInput

log = logging.getLogger(__name__)

# A4 at 600 dpi is 35 MP and phone cameras reach 50 MP; anything much larger is a mistake or an
# attack, and decoding it would take gigabytes.
DEFAULT_MAX_PIXELS = 72_000_000
DEFAULT_MAX_PAGES = 200
DEFAULT_PDF_DPI = 200
# Files that say "72 dpi" (phones) or less do not know their resolution.
_MIN_BELIEVABLE_DPI = 100


class CorruptImage(UnreadableDocument):
    """The file claims to be an image or PDF but cannot be decoded."""

    code = "corrupt_image"


class EmptyDocument(UnreadableDocument):
    """The file holds no pages at all."""

    code = "empty_document"


class ImageTooLarge(UnsupportedInput):
    """A page has more pixels than we are willing to decode."""

    code = "image_too_large"
    http_status = 413


class UnsupportedImageFormat(UnsupportedInput):
    """The upload is not PNG, JPEG, TIFF or PDF."""

    code = "unsupported_image_format"


@dataclass(frozen=True, eq=False)
class PageImage:
    """One page of an upload.

    ``pixels``: H x W x 3 ``uint8`` array, RGB. ``dpi``: resolution when known (None for phone
    photos and files that do not say). ``index``: 0-based position of the page in the upload.
    """

    pixels: np.ndarray
    dpi: float | None
    source: str
    index: int = 0

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def label(self) -> str:
        """Human-readable "file, page n" used in error messages."""
        return f"{self.source}, page {self.index + 1}"

    def gray(self) -> np.ndarray:
        """The page as a single-channel ``uint8`` image."""
        return to_gray(self.pixels)


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """Grey-level copy of an RGB (or already grey) ``uint8`` image."""
    if pixels.ndim == 2:
        return pixels
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def rotate_quarter(pixels: np.ndarray, rotation: int) -> np.ndarray:
    """Undo a page rotation: ``rotation`` is how far (degrees clockwise, a multiple of 90) the
    page content is turned in the image; the result is upright."""
    k = (int(rotation) // 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, k=k)) if k else pixels


def ink_mask(gray: np.ndarray, *, contrast: float = 0.75) -> np.ndarray:
    """Boolean mask of ink: pixels clearly darker than their local paper colour.

    Dividing by the local paper colour copes with the shadows and uneven light of phone photos,
    where one global threshold would blacken whole corners. The paper colour is estimated on a
    1/8 copy (a grey closing removes strokes, a blur smooths it), which keeps this cheap."""
    h, w = gray.shape[:2]
    f = 8 if min(h, w) >= 400 else 1
    small = gray
    if f > 1:
        small = cv2.resize(gray, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    k = 7 if f > 1 else 15
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    background = cv2.GaussianBlur(background, (0, 0), sigmaX=k / 2)
    if f > 1:
        background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    # gray < contrast * background, in integers: no float image of the whole page.
    threshold = (background.astype(np.uint16) * int(round(contrast * 256))) >> 8
    return gray.astype(np.uint16) < threshold


def is_blank(page: PageImage | np.ndarray, *, max_ink_ratio: float = 0.0015, margin: float = 0.03) -> bool:
    """True when a page carries (almost) no ink: the back side of a single-sided form, an empty
    sheet fed into the scanner. Scanner edges (``margin`` of each side) are ignored."""
    pixels = page.pixels if isinstance(page, PageImage) else page
    gray = to_gray(pixels)
    # Work on a ~100 dpi copy: blank detection does not need detail and this keeps it cheap.
    scale = min(1.0, 1200 / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = gray.shape
    my, mx = int(h * margin), int(w * margin)
    inner = gray[my:h - my, mx:w - mx]
    if inner.size == 0:
        return True
    mask = ink_mask(inner)
    # Isolated specks (dust, JPEG noise) are not content.
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    return float(mask.mean()) <= max_ink_ratio


def _kind(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if b"%PDF-" in data[:1024]:
        return "pdf"
    return None


def load_pages(source: str | Path | bytes, *, filename: str | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, max_pages: int = DEFAULT_MAX_PAGES,
               pdf_dpi: int = DEFAULT_PDF_DPI) -> list[PageImage]:
    """Load every page of an upload as upright-as-stored RGB images.

    ``source`` is a path or the file's bytes; ``filename`` names it in messages (defaults to the
    path's name). JPEG EXIF orientation is applied. Raises ``UnsupportedImageFormat``,
    ``CorruptImage``, ``EmptyDocument`` or ``ImageTooLarge`` (all ``forms.errors`` subclasses)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = filename or "upload"
    else:
        path = Path(source)
        name = filename or path.name
        try:
            data = path.read_bytes()
        except OSError as e:
            raise UnreadableDocument(f"{name}: cannot read the file ({e.strerror})", filename=name) from e
    if not data:
        raise EmptyDocument(f"{name}: the file is empty (0 bytes)", filename=name)
    kind = _kind(data)
    if kind is None:
        raise UnsupportedImageFormat(
            f"{name}: not a PNG, JPEG, TIFF or PDF file; scan or photograph the form and upload "
            "one of those", filename=name)
    if kind == "pdf":
        pages = _load_pdf(data, name, dpi=pdf_dpi, max_pixels=max_pixels, max_pages=max_pages)
    else:
        pages = _load_raster(data, name, kind=kind, max_pixels=max_pixels, max_pages=max_pages)
    if not pages:
        raise EmptyDocument(f"{name}: the file holds no pages", filename=name)
    log.debug("loaded %d page(s) from %s", len(pages), name)
    return pages


def _too_large(name: str, page: int, w: int, h: int, max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"{name}, page {page}: image is {w}x{h} pixels ({w * h / 1e6:.0f} MP), more than the "
        f"{max_pixels / 1e6:.0f} MP allowed; scan at 200-300 dpi instead",
        filename=name, page=page, width=w, height=h)


def _dpi_of(img: Image.Image) -> float | None:
    dpi = img.info.get("dpi")
    if not dpi:
        return None
    try:
        value = float(dpi[0] if isinstance(dpi, (tuple, list)) else dpi)
    except (TypeError, ValueError):
        return None
    return round(value) if value >= _MIN_BELIEVABLE_DPI else None


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = max(float(arr.max()), 1.0)
        gray = np.clip(arr * (255.0 / (65535.0 if top > 255 else 255.0)), 0, 255).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def _load_raster(data: bytes, name: str, *, kind: str, max_pixels: int, max_pages: int) -> list[PageImage]:
    pages: list[PageImage] = []
    try:
        with warnings.catch_warnings():
            # We apply our own (lower) limit; the warning would only add noise to the logs.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        # Pillow's guard reads the size from the header too: nothing was decoded.
        raise ImageTooLarge(f"{name}, page 1: image is too large to decode safely ({e}); scan at "
                            "200-300 dpi instead", filename=name, page=1) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"{name}: damaged {kind.upper()} file, cannot read it ({e})",
                           filename=name, page=1) from e
    with img:
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        if n_frames > max_pages:
            raise ImageTooLarge(f"{name}: {n_frames} pages, more than the {max_pages} allowed in one "
                                "upload; split the file", filename=name, pages=n_frames)
        for i in range(n_frames):
            page_no = i + 1
            try:
                img.seek(i)
                w, h = img.size
                # Header-only check: nothing has been decoded yet.
                if w * h > max_pixels:
                    raise _too_large(name, page_no, w, h, max_pixels)
                if w == 0 or h == 0:
                    raise CorruptImage(f"{name}, page {page_no}: image has no pixels",
                                       filename=name, page=page_no)
                frame = img
                if kind == "jpeg":
                    frame = ImageOps.exif_transpose(img)
                frame.load()
                pixels = _to_rgb(frame)
                dpi = _dpi_of(img)
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                raise CorruptImage(f"{name}, page {page_no}: damaged image data, cannot decode it ({e})",
                                   filename=name, page=page_no) from e
            pages.append(PageImage(np.ascontiguousarray(pixels), dpi, name, i))
    return pages


def _load_pdf(data: bytes, name: str, *, dpi: int, max_pixels: int, max_pages: int) -> list[PageImage]:
    # pypdf is imported here: only PDF uploads need it.
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument(f"{name}: the PDF is password-protected; upload an unprotected copy",
                                     filename=name)
        sizes = []
        for page in reader.pages:
            box = page.mediabox
            w_pt, h_pt = float(box.width), float(box.height)
            if int(page.get("/Rotate", 0) or 0) % 180:
                w_pt, h_pt = h_pt, w_pt
            sizes.append((w_pt, h_pt))
    except UnreadableDocument:
        raise
    except (PdfReadError, OSError, ValueError, KeyError, TypeError) as e:
        raise CorruptImage(f"{name}: damaged PDF, cannot read it ({e})", filename=name) from e
    if not sizes:
        raise EmptyDocument(f"{name}: the PDF has no pages", filename=name)
    if len(sizes) > max_pages:
        raise ImageTooLarge(f"{name}: {len(sizes)} pages, more than the {max_pages} allowed in one upload; "
                            "split the file", filename=name, pages=len(sizes))
    for i, (w_pt, h_pt) in enumerate(sizes):
        w, h = round(w_pt * dpi / 72), round(h_pt * dpi / 72)
        if w * h > max_pixels:
            raise _too_large(name, i + 1, w, h, max_pixels)
    with tempfile.TemporaryDirectory(prefix="baoxue-pdf-") as tmp:
        tmp_dir = Path(tmp)
        pdf_path = tmp_dir / "in.pdf"
        pdf_path.write_bytes(data)
        try:
            tools.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf_path), str(tmp_dir / "p")],
                      timeout=30 + 5 * len(sizes))
        except MissingTool:
            raise
        except ToolFailed as e:
            raise CorruptImage(f"{name}: the PDF cannot be rasterised ({e.message})", filename=name) from e
        files = sorted(tmp_dir.glob("p-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        pages = []
        for i, f in enumerate(files):
            with Image.open(f) as img:
                pages.append(PageImage(np.ascontiguousarray(_to_rgb(img)), float(dpi), name, i))
    if len(pages) != len(sizes):
        raise CorruptImage(f"{name}: only {len(pages)} of {len(sizes)} PDF pages could be rasterised",
                           filename=name)
    return pages


def probe_upload(data: bytes, filename: str, *, max_pixels: int | None = None) -> str:
    """Cheap checks before an upload is accepted (nothing decoded): the kind ("png", "jpeg",
    "tiff", "pdf") from the first bytes, and image sizes from the headers. Raises the errors of
    ``parsers.images`` (unsupported format, damaged file, image too large)."""
    from PIL import Image, UnidentifiedImageError

    limit = max_pixels or DEFAULT_MAX_PIXELS
    if not data:
        raise EmptyDocument(f"{filename}: the file is empty (0 bytes)", filename=filename)
    kind = _kind(data)
    if kind is None:
        raise UnsupportedImageFormat(
            f"{filename}: not a PNG, JPEG, TIFF or PDF file; scan or photograph the form and upload one of "
            "those", filename=filename)
    if kind == "pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            n = len(PdfReader(io.BytesIO(data)).pages)
        except (PdfReadError, OSError, ValueError, KeyError, TypeError) as e:
            raise CorruptImage(f"{filename}: damaged PDF, cannot read it ({e})", filename=filename) from e
        if n == 0:
            raise EmptyDocument(f"{filename}: the PDF has no pages", filename=filename)
        return kind
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > limit:
                    raise _too_large(filename, 1, w, h, limit)
                if kind == "png":
                    img.verify()  # chunk CRCs: a truncated or damaged PNG fails here
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{filename}: image is too large to decode safely ({e}); scan at 200-300 "
                                   "dpi instead", filename=filename) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"{filename}: damaged {kind.upper()} file, cannot read it ({e})",
                                  filename=filename) from e
    return kind
