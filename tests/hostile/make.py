"""The hostile-input corpus, generated (nothing large is committed): ``python -m tests.hostile.make DIR``
writes every file to DIR; ``tests/test_hostile.py`` builds the same files in memory.

Each builder returns the file's bytes. Bombs are honest (the sizes and checksums they declare are
what they inflate to), built by repeating one byte-aligned deflate block, so a 1 GiB member costs
about 1 MB and a second or so to build.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024
GIB = 1024 * MIB
_SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "scans"


# ---- building blocks ---------------------------------------------------------------------------------

def deflate_repeat(byte: bytes, total: int, *, block: int = MIB, crc: bool = True) -> tuple[bytes, int]:
    """A raw deflate stream of ``total`` copies of ``byte`` and its CRC-32, built from one
    full-flushed block repeated (no back reference crosses a block, so blocks concatenate)."""
    assert total % block == 0
    chunk_in = byte * block
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(chunk_in) + c.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    value = 0
    for _ in range(total // block if crc else 0):
        value = zlib.crc32(chunk_in, value)
    return chunk * (total // block) + end, value


def zlib_repeat(byte: bytes, total: int, *, block: int = MIB) -> bytes:
    """The same as a zlib stream (what a PDF's FlateDecode holds): header, deflate, Adler-32."""
    raw, _crc = deflate_repeat(byte, total, block=block, crc=False)
    adler = 1
    chunk_in = byte * block
    for _ in range(total // block):
        adler = zlib.adler32(chunk_in, adler)
    return b"\x78\xda" + raw + struct.pack(">I", adler)


def write_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A ZIP from (name, data, method 0|8, crc32, uncompressed size): data already compressed."""
    out = io.BytesIO()
    central = []
    for name, data, method, crc, usize in members:
        fn = name.encode()
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x800, method, 0, 0x21, crc, len(data), usize,
                              len(fn), 0) + fn)
        out.write(data)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x800, method, 0, 0x21, crc,
                                   len(data), usize, len(fn), 0, 0, 0, 0, 0, offset) + fn)
    start = out.tell()
    for c in central:
        out.write(c)
    size = out.tell() - start
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), size, start, 0))
    return out.getvalue()


def _members(zip_bytes: bytes) -> list[tuple[str, bytes, int, int, int]]:
    import zipfile

    out = []
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        for info in z.infolist():
            data = z.read(info)
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            out.append((info.filename, c.compress(data) + c.flush(), 8, zlib.crc32(data), len(data)))
    return out


def plain_docx() -> bytes:
    """A small valid DOCX (python-docx's default template with one paragraph): not one of our forms."""
    import docx

    d = docx.Document()
    d.add_paragraph("这不是本系统签发的文书。")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _replace(members, name: str, data: bytes):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    new = (name, c.compress(data) + c.flush(), 8, zlib.crc32(data), len(data))
    return [new if m[0] == name else m for m in members] + ([] if any(m[0] == name for m in members) else [new])


# ---- the corpus ---------------------------------------------------------------------------------------

def zip_bomb_docx() -> bytes:
    """word/document.xml inflates to 1 GiB of spaces (about 1 MB on disk)."""
    members = [m for m in _members(plain_docx()) if m[0] != "word/document.xml"]
    raw, crc = deflate_repeat(b" ", GIB)
    return write_zip([*members, ("word/document.xml", raw, 8, crc, GIB)])


def side_member_bomb_docx() -> bytes:
    """A valid DOCX with an extra member no reader needs, inflating to 1 GiB."""
    raw, crc = deflate_repeat(b"\0", GIB)
    return write_zip([*_members(plain_docx()), ("word/media/padding.bin", raw, 8, crc, GIB)])


def lying_header_docx() -> bytes:
    """document.xml whose headers claim 2 KB while its data inflates to 256 MiB."""
    members = [m for m in _members(plain_docx()) if m[0] != "word/document.xml"]
    raw, crc = deflate_repeat(b" ", 256 * MIB)
    return write_zip([*members, ("word/document.xml", raw, 8, crc, 2048)])


def xxe_docx() -> bytes:
    """docProps/custom.xml declaring an external entity that reads /etc/passwd."""
    xml = (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
           b'<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
           b'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
           b'<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="BaoxueDocId">'
           b'<vt:lpwstr>&xxe;</vt:lpwstr></property></Properties>')
    members = _replace(_members(plain_docx()), "docProps/custom.xml", xml)
    return write_zip(members)


def billion_laughs_docx() -> bytes:
    """word/document.xml with the classic nested entities (10^9 "lol"s)."""
    ents = ['<!ENTITY lol "lol">'] + [f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                                      for i in range(1, 10)]
    xml = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [' + "".join(ents) + ']>\n'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
           '<w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>').encode()
    return write_zip(_replace(_members(plain_docx()), "word/document.xml", xml))


def many_members_docx(n: int = 10_000) -> bytes:
    """A valid DOCX plus ``n`` empty members."""
    extra = [(f"customXml/item{i}.bin", b"", 0, 0, 0) for i in range(n)]
    return write_zip([*_members(plain_docx()), *extra])


def _pdf(pages: int = 1, content: bytes | None = None) -> bytes:
    import pikepdf

    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(595, 842))
    if content is not None:
        pdf.pages[0].Contents = pdf.make_stream(content)
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def sample_pdf() -> bytes:
    """A real rendered form (the issued notice of the scan samples)."""
    return (_SAMPLES / "issued.pdf").read_bytes()


def truncated_pdf() -> bytes:
    data = sample_pdf()
    return data[: len(data) // 3]


def encrypted_pdf(owner_only: bool = False) -> bytes:
    import pikepdf

    with pikepdf.open(io.BytesIO(sample_pdf())) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, encryption=pikepdf.Encryption(user="" if owner_only else "open-sesame", owner="owner-pw",
                                                    allow=pikepdf.Permissions(extract=False)))
    return buf.getvalue()


def pages_pdf(n: int = 5000) -> bytes:
    return _pdf(n)


def stream_bomb_pdf() -> bytes:
    """One page whose content stream (FlateDecode) inflates to 1 GiB of spaces."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    stream = pikepdf.Stream(pdf, zlib_repeat(b" ", GIB))
    stream.Filter = pikepdf.Name.FlateDecode
    pdf.pages[0].Contents = pdf.make_indirect(stream)
    buf = io.BytesIO()
    pdf.save(buf, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(side: int = 30000) -> bytes:
    """A 1-bit ``side`` x ``side`` PNG, all white (about 100 KB; 900 MP once decoded)."""
    row = b"\0" + b"\xff" * ((side + 7) // 8)
    c = zlib.compressobj(9)
    body = bytearray()
    for _ in range(side):
        body += c.compress(row)
    body += c.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(body))
            + _png_chunk(b"IEND", b""))


def huge_jpeg_header(side: int = 20000) -> bytes:
    """A small real JPEG whose frame header (SOF) is rewritten to claim ``side`` x ``side``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (16, 16), 255).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, side, side)
            break
        i += 2 + length
    return bytes(data)


def many_frames_tiff(n: int = 2000) -> bytes:
    """A little-endian TIFF of ``n`` 1x1 white frames sharing one strip."""
    entries = 8
    ifd_size = 2 + entries * 12 + 4
    strip_at = 8
    out = bytearray(b"II*\x00" + struct.pack("<I", 16) + b"\xff" + b"\0" * 7)
    for k in range(n):
        here = 16 + k * ifd_size
        nxt = here + ifd_size if k < n - 1 else 0
        tags = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                (273, 4, 1, strip_at), (278, 3, 1, 1), (279, 4, 1, 1)]
        out += struct.pack("<H", entries)
        for tag, typ, count, value in tags:
            out += struct.pack("<HHII", tag, typ, count, value)
        out += struct.pack("<I", nxt)
    return bytes(out)


def _png(pixels) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", dpi=(200, 200))
    return buf.getvalue()


def _genuine_qr():
    """The 回证 page of the sample notice (200 dpi) and its QR code (payload, box)."""
    from parsers.images import load_pages
    from parsers.qr import find_codes

    page = load_pages(_SAMPLES / "receipt_direct_flatbed200.jpg")[0]
    hit = find_codes(page)[0]
    xs, ys = [c[0] for c in hit.corners], [c[1] for c in hit.corners]
    box = (int(min(xs)) - 10, int(min(ys)) - 10, int(max(xs)) + 10, int(max(ys)) + 10)
    return page.pixels.copy(), hit.payload, box


def forged_qr_png() -> bytes:
    """The sample 回证 page whose code is replaced by one claiming another page (5/5 -> 4/5) with
    the original MAC: a forged code."""
    import segno
    from PIL import Image

    pixels, payload, (x0, y0, x1, y1) = _genuine_qr()
    forged = payload.replace("|5/5|", "|4/5|")
    buf = io.BytesIO()
    segno.make(forged, error="m").save(buf, kind="png", scale=4, border=2)
    code = Image.open(buf).convert("RGB").resize((x1 - x0, y1 - y0), Image.NEAREST)
    pixels[y0:y1, x0:x1] = 255
    pixels[y0:y1, x0:x1] = __import__("numpy").asarray(code)
    return _png(pixels)


def copied_qr_png() -> bytes:
    """Another document's page (tests/samples/scans/foreign_page.png at 200 dpi, its own code
    removed) carrying the genuine code cut from the sample 回证 page."""
    import numpy as np
    from PIL import Image

    pixels, _payload, (x0, y0, x1, y1) = _genuine_qr()
    other = Image.open(_SAMPLES / "foreign_page.png").convert("RGB")
    other = np.asarray(other.resize((pixels.shape[1], pixels.shape[0]), Image.BILINEAR)).copy()
    other[: int(other.shape[0] * 0.25), int(other.shape[1] * 0.3):] = 255  # the foreign code's corner
    other[y0:y1, x0:x1] = pixels[y0:y1, x0:x1]
    return _png(other)


CORPUS: dict[str, Callable[[], bytes]] = {
    "zip_bomb.docx": zip_bomb_docx,
    "side_member_bomb.docx": side_member_bomb_docx,
    "lying_header.docx": lying_header_docx,
    "xxe.docx": xxe_docx,
    "billion_laughs.docx": billion_laughs_docx,
    "many_members.docx": many_members_docx,
    "truncated.pdf": truncated_pdf,
    "encrypted.pdf": encrypted_pdf,
    "owner_encrypted.pdf": lambda: encrypted_pdf(owner_only=True),
    "pages_5000.pdf": pages_pdf,
    "stream_bomb.pdf": stream_bomb_pdf,
    "huge_30000.png": huge_png,
    "huge_header_20000.jpg": huge_jpeg_header,
    "frames_2000.tif": many_frames_tiff,
    "forged_qr.png": forged_qr_png,
    "copied_qr.png": copied_qr_png,
}


def main(argv: list[str]) -> None:  # pragma: no cover - by hand
    out = Path(argv[0] if argv else "output/hostile")
    out.mkdir(parents=True, exist_ok=True)
    for name, build in CORPUS.items():
        data = build()
        (out / name).write_bytes(data)
        print(f"{name}: {len(data):,} bytes")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
