"""The scan pipeline: returned paper (flatbed scans, copier PDFs, fax pages, phone photos) read
back into per-field readings with a confidence, the crop each came from and a reason.

Two steps, because parsers never touch the database (the caller looks documents up):

1. ``identify_page(page, secret=..., engine=...)`` -> ``PageIdentity``: the QR payload verified
   with ``forms.identity.decode`` (rotation from the code); without a readable code, OCR of the
   printed caption under the QR square (document id and page i/n) or of the printed document
   number; otherwise "unidentified" with the reason, for a person to assign. Blank pages are
   recognised and skipped.
2. ``read_page(page, identity, ctx, engine=...)`` -> ``PageReading``: the page is aligned to the
   template page recorded at render time (``Document.geometry``) and every field on it is read
   through its spec from its own crop only (never the full page):

   * printed values (INPUT/SYSTEM fields that were filled when issued) are compared with the issued
     snapshot; the value is always the issued one, a mismatch is flagged (possible tampering).
     Labels are never OCR'd: they are printed text we already know (RapidOCR's recognition-only
     path drops 辍). A low-confidence or mismatching RapidOCR answer is retried with the fallback
     engine (Tesseract) before flagging;
   * handwritten values are OCR'd and validated: ID number checksum, dates plausible (not before
     the document was issued, not in the future), names matched against the case's people
     (pypinyin for near-misses); validation moves the confidence. Dates and numbers printed as
     character boxes (DOMAIN §5.6.2, ``Field.hand_boxes``) are read box by box: the boxes print in
     a drop-out grey the scan's ink threshold leaves out, and where a scan still shows them they
     are taken away with the issued PDF as reference (``box_writing``); the written digits are
     read as one line and each alone, and a value goes through only when every written box holds
     exactly one digit and both readings agree;
   * tick boxes (the printed ☐ of CHOICE/MULTI/BOOL fields, located in the issued PDF with
     ``tick_boxes_from_pdf``): ticked / empty / ambiguous, ambiguous goes to review;
   * signature, fingerprint and red-seal zones: presence only (DOMAIN §5.6 3(b): a present mark is
     confirmed by a person).

A reading below ``ctx.threshold``, failing validation, ambiguous or flagged has ``needs_review``.
``merge_readings`` folds the pages of one document into one value per field path.

The steps live in their own modules: ``identify`` (which document and page), ``ink`` (printed
values compared with the issued PDF), ``boxes`` (printed tick and character boxes), ``handwriting``
(written values read and validated), ``readings`` (the result types) and ``read`` (one page, and
the pages of a document merged). The names below are the pipeline's public surface.
"""

from parsers.base import FieldReading, issued_value, resolve_field
from parsers.scan.boxes import BoxWriting, box_writing, boxed_text, single_digit, tick_boxes_from_pdf
from parsers.scan.handwriting import interpret_hand, match_name, parse_hand_date
from parsers.scan.identify import PageIdentity, identify_page
from parsers.scan.ink import ReferencePages, compare_ink
from parsers.scan.read import PageReading, merge_readings, png_bytes, read_page
from parsers.scan.readings import DEFAULT_THRESHOLD, ReadContext
from parsers.scan.split import split_all, split_pages

__all__ = [
    "DEFAULT_THRESHOLD", "BoxWriting", "FieldReading", "PageIdentity", "PageReading", "ReadContext",
    "ReferencePages", "box_writing", "boxed_text", "compare_ink", "identify_page", "interpret_hand",
    "issued_value", "match_name", "merge_readings", "parse_hand_date", "png_bytes", "read_page",
    "resolve_field", "single_digit", "split_all", "split_pages", "tick_boxes_from_pdf",
]
