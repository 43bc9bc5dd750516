"""Choosing the parser for an uploaded file (after Paperless-ngx ``parsers/registry.py``).

Every parser class says how well it fits a file (``score``: higher wins, None declines); the
highest score parses. A file no parser takes raises UnsupportedInput naming the file and why
(a scan, an old .doc, an unknown kind). Further parsers (the scan pipeline) ``register``
themselves.
"""

from __future__ import annotations

import logging
from pathlib import Path

from forms.errors import UnsupportedInput
from parsers.base import ParsedForm, Parser, sniff
from parsers.docx_parser import DocxParser
from parsers.pdf_parser import PdfParser

log = logging.getLogger(__name__)

_PARSERS: list[type] = [DocxParser, PdfParser]


def register(parser_class: type) -> None:
    """Add a parser class (e.g. the scan pipeline's); later registrations win ties."""
    if parser_class not in _PARSERS:
        _PARSERS.insert(0, parser_class)


def parsers() -> list[type]:
    return list(_PARSERS)


def choose(path: Path, mime: str | None = None) -> type | None:
    """The best-scoring parser class for a file, or None."""
    best, best_score = None, None
    for cls in _PARSERS:
        score = cls.score(path, mime)
        if score is not None and (best_score is None or score > best_score):
            best, best_score = cls, score
    return best


def _why_not(path: Path) -> str:
    kind = sniff(path)
    if kind == "pdf":
        return "是扫描件（PDF 没有文字层），扫描件由扫描识别流程读取"
    if kind in ("png", "jpeg", "tiff"):
        return "是图片（扫描件或照片），由扫描识别流程读取"
    if kind == "ole":
        return "是旧版 Word (.doc) 文件，请另存为 .docx 后再上传"
    if kind == "zip":
        return "不是 Word 文档（.docx）"
    return "不是可识别的文件类型（支持 .docx 和 PDF）"


def parse_file(path: Path | str, *, secret: str, mime: str | None = None) -> ParsedForm:
    """Identify and read a returned file; UnsupportedInput when no parser takes it."""
    path = Path(path)
    if not path.is_file():
        raise UnsupportedInput(f"文件“{path.name}”不存在或不是文件", file=path.name)
    cls = choose(path, mime)
    if cls is None:
        raise UnsupportedInput(f"无法读取文件“{path.name}”：{_why_not(path)}", file=path.name,
                               kind=sniff(path) or "unknown")
    parser = cls()
    assert isinstance(parser, Parser)
    log.info("parsing %s with %s", path.name, cls.__name__)
    return parser.parse(path, secret=secret)
