"""Issuing documents: validation, numbering, rendering and storing one document, system-filled
values (prefill) and batch renders."""
