"""Loading uploaded scans and photos as page images.

``load_pages`` turns one upload (PNG, JPEG, multi-page TIFF or an image-only PDF) into a list of
``PageImage`` objects: RGB ``uint8`` pixel arrays (PIL channel order, *not* OpenCV's BGR) with the
resolution when the file states a believable one. Everything that can go wrong with the file is
raised as a typed error naming the file, the page and why, before any pixel work starts:

* the kind is recognised from the first bytes, never from the file name;
* image size is checked from the header, before decoding, so a 20000x20000 image is refused
  without allocating 1.2 GB (Pillow's own decompression-bomb guard is wrapped as well);
* PDFs are rasterised with ``render_pdf`` (pdfium, the one rasteriser of the readers: scanned
  uploads, the issued reference pages, the QR corner of a digital PDF) after their page counts
  and sizes have been checked with pypdf.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from forms.errors import UnreadableDocument, UnsupportedInput
from parsers.preflight import ImageTooLarge  # noqa: F401  (raised here too; one class for the limit)

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


class UnsupportedImageFormat(UnsupportedInput):
    """The upload is not PNG, JPEG, TIFF or PDF."""

    code = "unsupported_image_format"


# A page scanned below this resolution is read as a fax: its text enlarged before OCR, its
# boxed digits judged as a fax prints them (a digit may vanish, an edge swallow a stroke).
FAX_BELOW_DPI = 170.0


def is_fax(dpi: float) -> bool:
    """A page scanned at ``dpi`` (0: not known) is read as a fax."""
    return 0 < dpi < FAX_BELOW_DPI


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
            raise UnreadableDocument(f"文件“{name}”无法读取（{e.strerror}）", filename=name) from e
    if not data:
        raise EmptyDocument(f"文件“{name}”是空的（0 字节）", filename=name)
    kind = _kind(data)
    if kind is None:
        raise UnsupportedImageFormat(
            f"文件“{name}”不是 PNG、JPEG、TIFF 或 PDF 文件：请扫描或拍摄表单后上传这几种格式之一", filename=name)
    if kind == "pdf":
        pages = _load_pdf(data, name, dpi=pdf_dpi, max_pixels=max_pixels, max_pages=max_pages)
    else:
        pages = _load_raster(data, name, kind=kind, max_pixels=max_pixels, max_pages=max_pages)
    if not pages:
        raise EmptyDocument(f"文件“{name}”中没有页面", filename=name)
    log.debug("loaded %d page(s) from %s", len(pages), name)
    return pages


def _too_large(name: str, page: int, w: int, h: int, max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"文件“{name}”第{page}页：图像为 {w}x{h} 像素（{w * h} pixels，约 {w * h / 1e6:.0f} 百万像素），"
        f"超过上限 {max_pixels / 1e6:.0f} 百万像素；请以 200–300 dpi 扫描",
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
        raise ImageTooLarge(f"文件“{name}”第1页：图像过大，无法安全解码；请以 200–300 dpi 扫描",
                            filename=name, cause=str(e)[:200], page=1) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"文件“{name}”：{kind.upper()} 文件已损坏，无法读取",
                           filename=name, cause=str(e)[:200], page=1) from e
    with img:
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        if n_frames > max_pages:
            raise ImageTooLarge(f"文件“{name}”有{n_frames}页，超过每次上传上限{max_pages}页；请分成几个文件上传",
                                filename=name, pages=n_frames)
        for i in range(n_frames):
            page_no = i + 1
            try:
                img.seek(i)
                w, h = img.size
                # Header-only check: nothing has been decoded yet.
                if w * h > max_pixels:
                    raise _too_large(name, page_no, w, h, max_pixels)
                if w == 0 or h == 0:
                    raise CorruptImage(f"文件“{name}”第{page_no}页：图像没有像素",
                                       filename=name, page=page_no)
                frame = img
                if kind == "jpeg":
                    frame = ImageOps.exif_transpose(img)
                frame.load()
                pixels = _to_rgb(frame)
                dpi = _dpi_of(img)
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                raise CorruptImage(f"文件“{name}”第{page_no}页：图像数据已损坏，无法解码",
                                   filename=name, cause=str(e)[:200], page=page_no) from e
            pages.append(PageImage(np.ascontiguousarray(pixels), dpi, name, i))
    return pages


def _load_pdf(data: bytes, name: str, *, dpi: int, max_pixels: int, max_pages: int) -> list[PageImage]:
    # pypdf is imported here: only PDF uploads need it.
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument(f"文件“{name}”：PDF 有密码保护，请上传未加密的文件",
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
        raise CorruptImage(f"文件“{name}”：PDF 已损坏，无法读取", filename=name, cause=str(e)[:200]) from e
    if not sizes:
        raise EmptyDocument(f"文件“{name}”：PDF 中没有页面", filename=name)
    if len(sizes) > max_pages:
        raise ImageTooLarge(f"文件“{name}”有{len(sizes)}页，超过每次上传上限{max_pages}页；请分成几个文件上传",
                            filename=name, pages=len(sizes))
    for i, (w_pt, h_pt) in enumerate(sizes):
        w, h = round(w_pt * dpi / 72), round(h_pt * dpi / 72)
        if w * h > max_pixels:
            raise _too_large(name, i + 1, w, h, max_pixels)
    pixels = render_pdf(data, dpi=dpi, name=name)
    pages = [PageImage(np.ascontiguousarray(p), float(dpi), name, i) for i, p in enumerate(pixels)]
    if len(pages) != len(sizes):
        raise CorruptImage(f"文件“{name}”：PDF 共{len(sizes)}页，只能渲染其中{len(pages)}页",
                           filename=name)
    return pages


def render_pdf(data: bytes, *, dpi: float, pages: Sequence[int] | None = None,
               crop_pt: tuple[float, float, float, float] | None = None, grey: bool = False,
               name: str = "PDF") -> list[np.ndarray]:
    """The one PDF rasteriser (pdfium, in-process, under the process-wide pdfium lock): pages
    ``pages`` (1-based; every page when None) at ``dpi`` as RGB ``uint8`` arrays (grey with
    ``grey``), the page's own rotation applied. ``crop_pt``: only the box (x0, top, x1, bottom) in
    points from the page's top-left corner. A damaged file or a missing page raises
    ``CorruptImage`` naming ``name``."""
    import pypdfium2 as pdfium

    from forms.pdfium_lock import PDFIUM_LOCK

    out = []
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(bytes(data))
        except pdfium.PdfiumError as e:
            raise CorruptImage(f"文件“{name}”：PDF 已损坏，无法读取", filename=name, cause=str(e)[:200]) from e
        try:
            numbers = list(pages) if pages is not None else list(range(1, len(doc) + 1))
            for page_no in numbers:
                if not 1 <= page_no <= len(doc):
                    raise CorruptImage(f"文件“{name}”：PDF 没有第{page_no}页", filename=name, page=page_no)
                page = doc[page_no - 1]
                try:
                    crop = (0.0, 0.0, 0.0, 0.0)
                    if crop_pt is not None:
                        w, h = page.get_size()
                        x0, top, x1, bottom = crop_pt
                        # pdfium cuts amounts off (left, bottom, right, top)
                        crop = (max(0.0, x0), max(0.0, h - bottom), max(0.0, w - x1), max(0.0, top))
                    bitmap = page.render(scale=dpi / 72.0, crop=crop, grayscale=grey)
                    try:
                        img = bitmap.to_pil()
                        pixels = np.array(img.convert("L" if grey else "RGB"), copy=True)
                    finally:
                        bitmap.close()
                finally:
                    page.close()
                out.append(pixels)
        except pdfium.PdfiumError as e:
            raise CorruptImage(f"文件“{name}”：PDF 页面无法渲染", filename=name, cause=str(e)[:200]) from e
        finally:
            doc.close()
    return out


def probe_upload(data: bytes, filename: str, *, max_pixels: int | None = None) -> str:
    """Cheap checks before an upload is accepted (nothing decoded): the kind ("png", "jpeg",
    "tiff", "pdf") from the first bytes, and image sizes from the headers. Raises the errors of
    ``parsers.images`` (unsupported format, damaged file, image too large)."""
    from PIL import Image, UnidentifiedImageError

    limit = max_pixels or DEFAULT_MAX_PIXELS
    if not data:
        raise EmptyDocument(f"文件“{filename}”是空的（0 字节）", filename=filename)
    kind = _kind(data)
    if kind is None:
        raise UnsupportedImageFormat(
            f"文件“{filename}”不是 PNG、JPEG、TIFF 或 PDF 文件：请扫描或拍摄表单后上传这几种格式之一",
            filename=filename)
    if kind == "pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            n = len(PdfReader(io.BytesIO(data)).pages)
        except (PdfReadError, OSError, ValueError, KeyError, TypeError) as e:
            raise CorruptImage(f"文件“{filename}”：PDF 已损坏，无法读取", filename=filename, cause=str(e)[:200]) from e
        if n == 0:
            raise EmptyDocument(f"文件“{filename}”：PDF 中没有页面", filename=filename)
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
        raise ImageTooLarge(f"文件“{filename}”：图像过大，无法安全解码；请以 200–300 dpi 扫描",
                                   filename=filename, cause=str(e)[:200]) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"文件“{filename}”：{kind.upper()} 文件已损坏，无法读取",
                                  filename=filename, cause=str(e)[:200]) from e
    return kind
