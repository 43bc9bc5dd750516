"""Choosing the parser for a returned file (after Paperless-ngx ``parsers/registry.py``).

Every parser class says how well it fits a file (``score``: higher wins, None declines); the
highest score reads it. DOCX, digital PDF and scans (images and image-only PDFs) are all here,
behind the one protocol (``parsers.base.Parser``). A file no parser takes raises
UnsupportedInput naming the file and why (an old .doc, an unknown kind).
"""

from __future__ import annotations

import logging
from pathlib import Path

from forms.errors import UnsupportedInput
from forms.identity import QrKeys
from parsers.base import ParsedForm, Parser, sniff
from parsers.docx_parser import DocxParser
from parsers.pdf_parser import PdfParser
from parsers.scan.parser import ScanParser

log = logging.getLogger(__name__)

_PARSERS: list[type] = [DocxParser, PdfParser, ScanParser]


def register(parser_class: type) -> None:
    """Add a parser class; later registrations win ties."""
    if parser_class not in _PARSERS:
        _PARSERS.insert(0, parser_class)


def parsers() -> list[type]:
    """The registered parser classes."""
    return list(_PARSERS)


def choose(path: Path, mime: str | None = None) -> type | None:
    """The best-scoring parser class for a file, or None."""
    best, best_score = None, None
    for cls in _PARSERS:
        score = cls.score(path, mime)
        if score is not None and (best_score is None or score > best_score):
            best, best_score = cls, score
    return best


def why_not(path: Path) -> str:
    """Why no parser takes a file, in words for the person who uploaded it."""
    kind = sniff(path)
    if kind == "ole":
        return "是旧版 Word (.doc) 文件，请另存为 .docx 后再上传"
    if kind == "zip":
        return "不是 Word 文档（.docx）"
    return "不是可识别的文件类型（支持 .docx、PDF、PNG、JPEG、TIFF）"


def parser_for(path: Path | str, mime: str | None = None) -> Parser:
    """The parser that reads ``path``; UnsupportedInput naming the file when none does."""
    path = Path(path)
    if not path.is_file():
        raise UnsupportedInput(f"文件“{path.name}”不存在或不是文件", file=path.name)
    cls = choose(path, mime)
    if cls is None:
        raise UnsupportedInput(f"无法读取文件“{path.name}”：{why_not(path)}", file=path.name,
                               kind=sniff(path) or "unknown")
    parser = cls()
    assert isinstance(parser, Parser)
    return parser


def parse_file(path: Path | str, *, secret: QrKeys | str, mime: str | None = None) -> ParsedForm:
    """Identify and read a DOCX or digital PDF without looking its document up (what the file
    itself says). A scan or photo cannot be read without its issued document: UnsupportedInput."""
    path = Path(path)
    parser = parser_for(path, mime)
    if parser.background:
        kind = sniff(path)
        what = "是扫描件（PDF 没有文字层）" if kind == "pdf" else "是图片（扫描件或照片）"
        raise UnsupportedInput(f"无法直接读取文件“{path.name}”：{what}，由扫描识别流程按签发的文书读取",
                               file=path.name, kind=kind)
    log.info("parsing %s with %s", path.name, type(parser).__name__)
    return parser.parse(path, secret=secret)
