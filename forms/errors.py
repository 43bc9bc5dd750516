"""Error types shared by every layer.

One base class with a stable ``code`` and ``http_status``; subclasses per failure. Only ``web/``
turns them into HTTP responses (``{"error": code, "message": ..., "fields": {...}}``). Third-party
exceptions are wrapped at the module edge with ``raise X(...) from e``.
"""

from __future__ import annotations


class BaoxueError(Exception):
    """Base of every error the service raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, fields: dict[str, str] | None = None, **details):
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})
        self.details = details

    def to_dict(self) -> dict:
        body = {"error": self.code, "message": self.message, "fields": self.fields}
        if self.details:
            body["details"] = self.details
        return body


class ValidationFailed(BaoxueError):
    """Input failed validation; ``fields`` maps each failing field to why."""

    code = "validation_failed"
    http_status = 422


class NotFound(BaoxueError):
    code = "not_found"
    http_status = 404


class Conflict(BaoxueError):
    code = "conflict"
    http_status = 409


class InvalidTransition(Conflict):
    code = "invalid_transition"


class UnsupportedInput(BaoxueError):
    """An uploaded file is of a kind we cannot read, or is none of our forms."""

    code = "unsupported_input"
    http_status = 422


class UnreadableDocument(BaoxueError):
    """The file is of a supported kind but damaged or unreadable."""

    code = "unreadable_document"
    http_status = 422


class TamperedDocument(BaoxueError):
    """The identity code of a returned document does not verify (forged or altered)."""

    code = "tampered_document"
    http_status = 422


class UnknownDocument(BaoxueError):
    """The document is identified but not issued by this service (or not in scope)."""

    code = "unknown_document"
    http_status = 422


class MissingTool(BaoxueError):
    """An external program (LibreOffice, tesseract...) is not installed or does not start."""

    code = "missing_tool"
    http_status = 503


class ToolFailed(BaoxueError):
    """An external program ran but failed or timed out."""

    code = "tool_failed"
    http_status = 502


class RenderFailed(BaoxueError):
    code = "render_failed"
    http_status = 500


class Unauthorized(BaoxueError):
    """Not logged in, or the credentials (token, session) are not valid (any more)."""

    code = "unauthorized"
    http_status = 401


class Forbidden(BaoxueError):
    code = "forbidden"
    http_status = 403
