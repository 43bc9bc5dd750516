"""Bounded checks on an untrusted file before anything parses, stores or queues it.

The upload limit caps the bytes received, not what they expand to: a 2 MB DOCX can inflate to
gigabytes, a 1 MB PDF content stream to a gigabyte, a small PNG header can announce 900 million
pixels, a TIFF can chain thousands of frames. Every check here reads headers, or streams through
compressed data counting bytes with a fixed buffer, and refuses at the first limit crossed —
before anything is inflated or decoded — naming the limit (``LimitExceeded``, HTTP 422).

* ZIP (DOCX): member count, each member's declared size (Python's zipfile never yields more than
  the declared size, so the declared size is what a reader can get), the total, the compression
  ratio, and every XML part is scanned (bounded) for a DTD: OOXML has none, so ``<!DOCTYPE`` or
  ``<!ENTITY`` (XXE, billion laughs) is refused.
* PDF (qpdf via pikepdf, which decodes nothing on open): password, page count, page size at the
  scan resolution, object count, and every compressed stream inflated through a bounded buffer.
* PNG / JPEG / TIFF: pixel count of every frame from the headers, TIFF frame count by walking the
  IFD chain (Pillow reads headers only until ``load()``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from forms.errors import UnreadableDocument, UnsupportedInput

MIB = 1024 * 1024


class LimitExceeded(UnsupportedInput):
    """The file would expand beyond a limit (zip/stream bomb, too many pages, members, pixels)."""

    code = "limit_exceeded"
    http_status = 422


class ImageTooLarge(LimitExceeded):
    """A page has more pixels than we are willing to decode."""

    code = "image_too_large"


@dataclass(frozen=True)
class Limits:
    """What one upload may expand to. Defaults suit the forms we issue by a wide margin."""

    zip_members: int = 1000
    zip_member_bytes: int = 64 * MIB
    zip_xml_bytes: int = 16 * MIB
    zip_total_bytes: int = 200 * MIB
    zip_ratio: int = 100            # uncompressed / compressed, for members above 1 MiB
    pages: int = 200
    pixels: int = 72_000_000        # per page (at ``dpi`` for PDF pages)
    dpi: int = 200
    pdf_objects: int = 200_000
    pdf_stream_bytes: int = 64 * MIB
    pdf_total_bytes: int = 256 * MIB


DEFAULT_LIMITS = Limits()
_CHUNK = 256 * 1024


def _limit(name: str, limit: str, message: str, **details) -> LimitExceeded:
    cls = ImageTooLarge if limit == "pixels" else LimitExceeded
    return cls(f"文件“{name}”：{message}", fields={"file": f"{name}：{message}"},
                         limit=limit, filename=name, **details)


def check_file(path: Path | str, kind: str | None, *, name: str | None = None,
               limits: Limits = DEFAULT_LIMITS) -> dict:
    """Check the file at ``path`` of ``kind`` (``parsers.base.sniff``: 'zip', 'pdf', 'png',
    'jpeg', 'tiff'); returns what was learned (e.g. {"pages": n}). Raises ``LimitExceeded``, or
    ``UnreadableDocument`` for a damaged or password-protected file. Unknown kinds pass (the
    parser registry refuses them)."""
    path = Path(path)
    name = name or path.name
    if kind == "zip":
        return check_zip(path, name, limits)
    if kind == "pdf":
        return check_pdf(path, name, limits)
    if kind in ("png", "jpeg", "tiff"):
        return check_image(path, name, limits)
    return {}


# ---- ZIP / OOXML ------------------------------------------------------------------------------------

_DTD_MARKS = tuple(m.encode(enc) for m in ("<!DOCTYPE", "<!ENTITY") for enc in ("utf-8", "utf-16-le", "utf-16-be"))
_OVERLAP = max(len(m) for m in _DTD_MARKS)


def check_zip(path: Path, name: str, limits: Limits = DEFAULT_LIMITS) -> dict:
    import zipfile

    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UnreadableDocument(f"文件“{name}”：压缩包已损坏，无法读取", filename=name, cause=str(e)[:200]) from e
    with z:
        infos = z.infolist()
        if len(infos) > limits.zip_members:
            raise _limit(name, "zip_members", f"压缩包内有{len(infos)}个成员，超过上限{limits.zip_members}个",
                         value=len(infos), max=limits.zip_members)
        total = 0
        for info in infos:
            size, packed = info.file_size, max(info.compress_size, 1)
            member = info.filename[:80]
            xml = member.lower().endswith((".xml", ".rels"))
            cap = limits.zip_xml_bytes if xml else limits.zip_member_bytes
            if size > cap:
                raise _limit(name, "zip_xml_bytes" if xml else "zip_member_bytes",
                             f"成员“{member}”解压后为{size / MIB:.0f} MB，超过上限{cap / MIB:.0f} MB",
                             value=size, max=cap, member=member)
            if size > MIB and size / packed > limits.zip_ratio:
                raise _limit(name, "zip_ratio", f"成员“{member}”压缩比为{size / packed:.0f}:1，"
                             f"超过上限{limits.zip_ratio}:1（疑似压缩炸弹）",
                             value=round(size / packed), max=limits.zip_ratio, member=member)
            total += size
            if total > limits.zip_total_bytes:
                raise _limit(name, "zip_total_bytes", f"解压后总大小超过上限{limits.zip_total_bytes / MIB:.0f} MB",
                             value=total, max=limits.zip_total_bytes)
        for info in infos:
            if info.filename.lower().endswith((".xml", ".rels")):
                _scan_xml_member(z, info, name)
    return {"members": len(infos), "uncompressed": total}


def _scan_xml_member(z, info, name: str) -> None:
    """Refuse a DTD in an XML part, reading it through a fixed buffer (zipfile stops at the
    declared size and checks the CRC, so a lying header fails here instead of inflating)."""
    import zipfile

    tail = b""
    try:
        with z.open(info) as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                window = tail + chunk
                if any(m in window for m in _DTD_MARKS):
                    member = info.filename[:80]
                    raise _limit(name, "xml_dtd", f"成员“{member}”含有 DTD/实体声明（XML 外部实体或实体膨胀攻击），"
                                 "不予处理", member=member)
                tail = window[-_OVERLAP:]
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as e:
        raise UnreadableDocument(f"文件“{name}”：压缩包成员“{info.filename[:80]}”已损坏或加密",
                                 filename=name, cause=str(e)[:200]) from e


# ---- PDF -------------------------------------------------------------------------------------------

def check_pdf(path: Path, name: str, limits: Limits = DEFAULT_LIMITS) -> dict:
    import pikepdf

    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as e:
        raise UnreadableDocument(f"文件“{name}”：PDF 有打开密码，请上传未加密的文件", filename=name) from e
    except (pikepdf.PdfError, OSError, ValueError, RuntimeError) as e:
        raise UnreadableDocument(f"文件“{name}”：PDF 已损坏，无法读取", filename=name, cause=str(e)[:200]) from e
    with pdf:
        if pdf.is_encrypted:
            # Opens without a password (an owner password only) but the readers refuse encrypted
            # files: refused here, before it is stored, with the same reason.
            raise UnsupportedInput(f"文件“{name}”：PDF 已加密（设有权限密码），请上传未加密的文件",
                                   fields={"file": f"{name}：PDF 已加密"}, filename=name)
        try:
            n = len(pdf.pages)
        except (pikepdf.PdfError, RuntimeError, ValueError) as e:
            raise UnreadableDocument(f"文件“{name}”：PDF 页面树已损坏", filename=name, cause=str(e)[:200]) from e
        if n > limits.pages:
            raise _limit(name, "pages", f"有{n}页，超过每次上传上限{limits.pages}页；请分成几个文件上传",
                         value=n, max=limits.pages)
        for i, page in enumerate(pdf.pages, start=1):
            try:
                box = [float(x) for x in page.mediabox]
            except (pikepdf.PdfError, TypeError, ValueError, RuntimeError):
                continue  # a missing box: the readers fall back to A4
            w, h = abs(box[2] - box[0]) * limits.dpi / 72, abs(box[3] - box[1]) * limits.dpi / 72
            if w * h > limits.pixels:
                raise _limit(name, "pixels", f"第{i}页尺寸为{w:.0f}x{h:.0f}像素（{limits.dpi} dpi），超过上限"
                             f"{limits.pixels / 1e6:.0f}百万像素", value=round(w * h), max=limits.pixels, page=i)
        objects = pdf.objects
        if len(objects) > limits.pdf_objects:
            raise _limit(name, "pdf_objects", f"含有{len(objects)}个对象，超过上限{limits.pdf_objects}个",
                         value=len(objects), max=limits.pdf_objects)
        total = 0
        for obj in objects:
            if not isinstance(obj, pikepdf.Stream):
                continue
            size = _stream_size(obj, name, limits)
            if obj.get("/Subtype") == pikepdf.Name.Image:
                continue  # images are decoded a page at a time (the pixel cap bounds each one)
            total += size
            if total > limits.pdf_total_bytes:
                raise _limit(name, "pdf_total_bytes",
                             f"解码后的数据流总大小超过上限{limits.pdf_total_bytes / MIB:.0f} MB",
                             value=total, max=limits.pdf_total_bytes)
    return {"pages": n}


def _filters(stream) -> list[str]:
    import pikepdf

    f = stream.get("/Filter")
    if f is None:
        return []
    return [str(x) for x in f] if isinstance(f, pikepdf.Array) else [str(f)]


def _image_pixels(stream, name: str, limits: Limits) -> int:
    """An image stream's pixel count from its dictionary, refused (naming the limit) above ``limits.pixels``."""
    try:
        w, h = int(stream.get("/Width", 0)), int(stream.get("/Height", 0))
    except (TypeError, ValueError):
        w = h = 0
    if w * h > limits.pixels:
        raise _limit(name, "pixels", f"内嵌图像为{w}x{h}像素，超过上限{limits.pixels / 1e6:.0f}百万像素",
                     value=w * h, max=limits.pixels)
    return w * h


def _stream_size(stream, name: str, limits: Limits) -> int:
    """Decoded size of one stream, counted through a bounded buffer (Flate), from the image
    dictionary (image codecs), or bounded by the filter's worst expansion."""
    import pikepdf

    if stream.get("/Subtype") == pikepdf.Name.Image:
        _image_pixels(stream, name, limits)
    filters = _filters(stream)
    if not filters:
        return int(stream.get("/Length", 0) or 0)
    first = filters[0]
    if first in ("/FlateDecode", "/Fl"):
        try:
            raw = stream.read_raw_bytes()
        except (pikepdf.PdfError, RuntimeError) as e:
            raise UnreadableDocument(f"文件“{name}”：PDF 数据流已损坏", filename=name, cause=str(e)[:200]) from e
        return _inflated_size(raw, name, limits)
    if first in ("/DCTDecode", "/DCT", "/JPXDecode", "/JBIG2Decode", "/CCITTFaxDecode", "/CCF"):
        return _image_pixels(stream, name, limits)
    # LZW expands at most ~2,700:1, RunLength 64:1, ASCIIHex/85 shrink: bound by the worst case,
    # and decode (qpdf) only the few short streams whose worst case crosses the limit.
    raw_len = int(stream.get("/Length", 0) or 0)
    worst = raw_len * (2730 if first in ("/LZWDecode", "/LZW") else 64)
    if worst <= limits.pdf_stream_bytes:
        return worst
    if raw_len > limits.pdf_stream_bytes // 64:
        raise _limit(name, "pdf_stream_bytes", f"数据流（{first}）可能解码为超过{limits.pdf_stream_bytes / MIB:.0f} MB",
                     value=worst, max=limits.pdf_stream_bytes)
    try:
        size = len(stream.read_bytes())
    except (pikepdf.PdfError, RuntimeError) as e:
        raise UnreadableDocument(f"文件“{name}”：PDF 数据流已损坏", filename=name, cause=str(e)[:200]) from e
    if size > limits.pdf_stream_bytes:
        raise _limit(name, "pdf_stream_bytes", f"数据流解码后超过上限{limits.pdf_stream_bytes / MIB:.0f} MB",
                     value=size, max=limits.pdf_stream_bytes)
    return size


def _inflated_size(raw: bytes, name: str, limits: Limits) -> int:
    """Bytes a Flate stream inflates to, counted ``_CHUNK`` at a time (never held whole)."""
    d = zlib.decompressobj()
    size, buf = 0, raw
    while True:
        try:
            out = d.decompress(buf, _CHUNK)
        except zlib.error:
            return size  # a damaged stream: the readers stop where it breaks, as we do
        size += len(out)
        if size > limits.pdf_stream_bytes:
            raise _limit(name, "pdf_stream_bytes", f"一个数据流解压后超过上限{limits.pdf_stream_bytes / MIB:.0f} MB"
                         "（疑似压缩炸弹）", value=size, max=limits.pdf_stream_bytes)
        buf = d.unconsumed_tail
        if d.eof or (not buf and len(out) < _CHUNK):
            return size


# ---- images ----------------------------------------------------------------------------------------

def check_image(path: Path, name: str, limits: Limits = DEFAULT_LIMITS) -> dict:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                img = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UnreadableDocument(f"文件“{name}”：图像文件已损坏，无法读取", filename=name, cause=str(e)[:200]) from e
    with img:
        frames = 1
        if img.format == "TIFF":
            frames = _tiff_frames(path, name, limits)
        for i in range(frames):
            if i:
                try:
                    img.seek(i)
                except (EOFError, OSError, ValueError) as e:
                    raise UnreadableDocument(f"文件“{name}”第{i + 1}页：TIFF 已损坏", filename=name,
                                             cause=str(e)[:200]) from e
            w, h = img.size
            if w * h > limits.pixels:
                raise _limit(name, "pixels",
                             f"第{i + 1}页图像为{w}x{h}像素（{w * h} pixels，约{w * h / 1e6:.0f}百万像素），"
                             f"超过上限{limits.pixels / 1e6:.0f}百万像素；请以 200–300 dpi 扫描",
                             value=w * h, max=limits.pixels, page=i + 1)
    return {"pages": frames}


def _tiff_frames(path: Path, name: str, limits: Limits) -> int:
    """Frames in a TIFF by walking the IFD offsets (a few bytes per frame; loops refused)."""
    import struct

    data = Path(path).read_bytes()
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        offset = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        seen: set[int] = set()
        count = 0
        while offset:
            if offset in seen or offset >= len(data):
                raise UnreadableDocument(f"文件“{name}”：TIFF 目录链已损坏", filename=name)
            seen.add(offset)
            count += 1
            if count > limits.pages:
                raise _limit(name, "pages", f"有超过{limits.pages}页（帧），超过每次上传上限；请分成几个文件上传",
                             value=count, max=limits.pages)
            if big:
                (n,) = struct.unpack_from(order + "Q", data, offset)
                offset = struct.unpack_from(order + "Q", data, offset + 8 + n * 20)[0]
            else:
                (n,) = struct.unpack_from(order + "H", data, offset)
                offset = struct.unpack_from(order + "I", data, offset + 2 + n * 12)[0]
    except struct.error as e:
        raise UnreadableDocument(f"文件“{name}”：TIFF 已损坏", filename=name, cause=str(e)[:200]) from e
    return count
