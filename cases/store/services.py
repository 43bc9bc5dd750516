"""What the use cases need from the running app or worker (``Services``: session factory, file
store, secrets, fonts, converter and upload settings), and the one registry through which a
background job finds them. The app registers its services at start (``web.init_web``); a worker
registers the ones it builds from its configuration (``cases.store.jobs.main``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cases.store.storage import Store
from forms import pdf
from forms.identity import QrKeys
from parsers.preflight import DEFAULT_LIMITS, Limits


@dataclass
class Services:
    """What the use cases need from the running app: store, secrets, fonts, converter settings."""

    session_factory: sessionmaker[Session]
    store: Store
    output_dir: Path
    qr_keys: QrKeys
    fonts: tuple[str, ...] = ("FandolFang", "FandolSong", "Noto Serif CJK SC", "Noto Sans CJK SC")
    pdf_workers: int = 1
    pdf_timeout: float = 120
    max_upload_bytes: int = 64 * 1024 * 1024
    default_profile: str = "henan-weihui-2022"
    limits: Limits = DEFAULT_LIMITS  # what one upload may expand to (parsers.preflight)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], session_factory) -> Services:
        """Services from a settings mapping (Flask ``app.config`` or a Config's attributes)."""
        out = Path(config["OUTPUT_DIR"])
        pdf.configure(recycle_after=config.get("PDF_RECYCLE_AFTER"), recycle_rss_mb=config.get("PDF_RECYCLE_RSS_MB"),
                      nice=config.get("PDF_NICE"))
        return cls(session_factory=session_factory, store=Store(out / "store"), output_dir=out,
                   qr_keys=qr_keys_from(config), fonts=tuple(config[k] for k in (
                       "FONT_BODY", "FONT_TITLE", "FONT_TABLE", "FONT_HEADING")),
                   pdf_workers=int(config["PDF_WORKERS"]), pdf_timeout=float(config["PDF_TIMEOUT"]),
                   max_upload_bytes=int(config["MAX_UPLOAD_BYTES"]),
                   default_profile=config["DEFAULT_REGION_PROFILE"],
                   extra={k: config[k] for k in config if isinstance(k, str)
                          and k.startswith(("NOTIFY_", "SMTP_", "PUBLIC_URL"))})


def qr_keys_from(config: Mapping[str, Any]) -> QrKeys:
    """The QR keys of a settings mapping: current, retired (``QR_OLD_SECRETS``) and, in production,
    the public development key refused."""
    production = str(config.get("ENV_NAME") or "").lower() == "production"
    dev = config.get("QR_DEV_SECRET")
    return QrKeys.build(config["QR_HMAC_SECRET"], config.get("QR_OLD_SECRETS") or (),
                        refused=(dev,) if production and dev else ())


_REGISTERED: dict[str, Services] = {}


def register(services: Services) -> None:
    """Make ``services`` the ones background jobs of this process use."""
    _REGISTERED["default"] = services


def registered() -> Services:
    """The services registered in this process (by the app or the worker).

    A job run in a process that registered none is a wiring mistake, not a user error."""
    try:
        return _REGISTERED["default"]
    except KeyError:
        raise RuntimeError("no Services registered in this process: the app (web.init_web) or the worker "
                           "(cases.store.jobs.main) registers them before running jobs") from None
