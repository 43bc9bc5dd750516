"""Configuration, read once from the environment (microblog style: a Config class plus TestConfig)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# The public development defaults: refused in production (``secret_problems``).
DEV_SECRET_KEY = "dev-only-change-me"
DEV_QR_SECRET = "dev-only-qr-secret"
MIN_SECRET_LENGTH = 32


class Config:
    """Settings for a running service. Every value can be overridden by an environment variable."""

    # "production" refuses to start with default or short secrets; anything else is development.
    ENV_NAME = os.environ.get("BAOXUE_ENV", "development").strip().lower()
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
    # Key of the HMAC printed in every page's QR code (signs new pages). To rotate it, move the old
    # value into BAOXUE_QR_OLD_SECRETS (comma- or space-separated): pages printed with a retired
    # key still verify, and their outcome says "旧密钥".
    QR_HMAC_SECRET = os.environ.get("BAOXUE_QR_SECRET", DEV_QR_SECRET)
    QR_OLD_SECRETS = tuple(os.environ.get("BAOXUE_QR_OLD_SECRETS", "").replace(",", " ").split())
    # The public development key: a code it verifies is refused in production.
    QR_DEV_SECRET = DEV_QR_SECRET
    # Sessions: end after this long without a request, and at the latest this long after login.
    PERMANENT_SESSION_LIFETIME = dt.timedelta(minutes=int(os.environ.get("BAOXUE_SESSION_IDLE_MINUTES", "120")))
    SESSION_MAX_HOURS = float(os.environ.get("BAOXUE_SESSION_MAX_HOURS", "12"))
    SESSION_COOKIE_NAME = "baoxue_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Cookies only over HTTPS: on by default in production (behind a TLS proxy).
    SESSION_COOKIE_SECURE = _env_bool("BAOXUE_SECURE_COOKIES", ENV_NAME == "production")
    # argon2id parameters: "default" (the library's RFC 9106 profile); "cheap" only for tests.
    PASSWORD_HASH = "default"
    # Where the audit log's daily anchors are copied (a file an auditor keeps; empty: table only).
    AUDIT_ANCHOR_FILE = os.environ.get("BAOXUE_AUDIT_ANCHOR_FILE") or None
    OUTPUT_DIR = Path(os.environ.get("BAOXUE_OUTPUT_DIR", BASE_DIR / "output")).resolve()
    DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{OUTPUT_DIR / 'baoxue.db'}"
    REDIS_URL = os.environ.get("REDIS_URL") or None
    HUEY_IMMEDIATE = _env_bool("BAOXUE_HUEY_IMMEDIATE", False)
    # Queue name (one per deployment sharing a Redis).
    HUEY_NAME = os.environ.get("BAOXUE_HUEY_NAME", "baoxue")
    # Worker threads per job worker process.
    JOB_WORKERS = int(os.environ.get("BAOXUE_JOB_WORKERS", "2"))
    # CPU niceness of the job worker processes (the web's requests are served first).
    JOB_NICE = int(os.environ.get("BAOXUE_JOB_NICE", "5"))
    # Load what jobs need (OCR models, pinyin tables, the digit references) when the worker starts,
    # not in its first job; the seconds it took are logged ("worker warm-up: ...").
    JOB_WARM_UP = _env_bool("BAOXUE_JOB_WARM_UP", True)
    # Longest pause (seconds) between two polls of an empty SQLite queue by an idle worker thread.
    JOB_POLL_MAX_SECONDS = float(os.environ.get("BAOXUE_JOB_POLL_MAX_S", "0.5"))
    # A running job's lease: renewed by its worker's heartbeat every third of it; a job whose lease
    # ran out (worker killed) is queued again by the reaper, at most JOB_MAX_ATTEMPTS times in all.
    JOB_LEASE_SECONDS = float(os.environ.get("BAOXUE_JOB_LEASE_S", "60"))
    JOB_MAX_ATTEMPTS = int(os.environ.get("BAOXUE_JOB_MAX_ATTEMPTS", "3"))
    JOB_REAP_INTERVAL_SECONDS = float(os.environ.get("BAOXUE_JOB_REAP_S", "15"))
    # Fonts are settings: the templates carry style-level fonts that the renderer swaps in.
    # GB/T 9704: body 仿宋 (FandolFang, installed by scripts/setup.sh), title 小标宋 (FandolSong
    # Bold stands in), level-one headings 黑体; form tables a 宋体 face.
    FONT_BODY = os.environ.get("BAOXUE_FONT_BODY", "FandolFang")
    FONT_TITLE = os.environ.get("BAOXUE_FONT_TITLE", "FandolSong")
    FONT_TABLE = os.environ.get("BAOXUE_FONT_TABLE", "Noto Serif CJK SC")
    FONT_HEADING = os.environ.get("BAOXUE_FONT_HEADING", "Noto Sans CJK SC")
    # Number of warm LibreOffice processes used for DOCX -> PDF.
    PDF_WORKERS = int(os.environ.get("BAOXUE_PDF_WORKERS", str(min(2, os.cpu_count() or 1))))
    PDF_TIMEOUT = float(os.environ.get("BAOXUE_PDF_TIMEOUT", "120"))
    # Each warm LibreOffice is quit and started afresh after this many conversions or above this
    # resident memory (MiB), off the request's path (0 = never); it runs at this CPU niceness
    # (below the web process's, whether it is started by a renderer or by the process itself).
    PDF_RECYCLE_AFTER = int(os.environ.get("BAOXUE_PDF_RECYCLE_AFTER", "50"))
    PDF_RECYCLE_RSS_MB = float(os.environ.get("BAOXUE_PDF_RECYCLE_RSS_MB", "400"))
    PDF_NICE = int(os.environ.get("BAOXUE_PDF_NICE", "5"))
    # A web process renders documents (DOCX, PDF, QR, geometry) in this many renderer processes
    # of its own, at this CPU niceness, so that its threads answering reads never wait behind
    # rendering (0: render in the web thread). At most RENDER_PENDING documents per web process
    # render or wait; when full, issuing answers 503 with Retry-After (no number taken). Keep
    # RENDER_PENDING below gunicorn's threads (gunicorn.conf.py) so that threads stay for reads.
    RENDER_PROCESSES = int(os.environ.get("BAOXUE_RENDER_PROCESSES", "1"))
    RENDER_PENDING = int(os.environ.get("BAOXUE_RENDER_PENDING", "8"))
    RENDER_NICE = int(os.environ.get("BAOXUE_RENDER_NICE", "5"))
    # LibreOffice failing this many conversions in a row (after its own restart and retry) counts
    # as unavailable: issuing answers 503 with Retry-After for PDF_RETRY_AFTER_S seconds.
    PDF_FAILURES_BEFORE_503 = int(os.environ.get("BAOXUE_PDF_FAILURES_BEFORE_503", "3"))
    PDF_RETRY_AFTER_S = float(os.environ.get("BAOXUE_PDF_RETRY_AFTER_S", "30"))
    DEFAULT_REGION_PROFILE = os.environ.get("BAOXUE_REGION_PROFILE", "henan-weihui-2022")
    # Push alerts (cases/notify): the address of this service in links, the mail server, retries.
    PUBLIC_URL = os.environ.get("BAOXUE_PUBLIC_URL", "http://127.0.0.1:8000")
    SMTP_HOST = os.environ.get("BAOXUE_SMTP_HOST", "127.0.0.1")
    SMTP_PORT = int(os.environ.get("BAOXUE_SMTP_PORT", "25"))
    SMTP_FROM = os.environ.get("BAOXUE_SMTP_FROM", "baoxue@localhost")
    SMTP_USER = os.environ.get("BAOXUE_SMTP_USER") or None
    SMTP_PASSWORD = os.environ.get("BAOXUE_SMTP_PASSWORD") or None
    SMTP_STARTTLS = _env_bool("BAOXUE_SMTP_STARTTLS", False)
    # A failed delivery is tried again after NOTIFY_RETRY_BASE_S, then twice as long each time,
    # NOTIFY_MAX_ATTEMPTS attempts in all; then it is recorded failed with the last reason.
    NOTIFY_RETRY_BASE_S = float(os.environ.get("BAOXUE_NOTIFY_RETRY_BASE_S", "60"))
    NOTIFY_MAX_ATTEMPTS = int(os.environ.get("BAOXUE_NOTIFY_MAX_ATTEMPTS", "5"))
    NOTIFY_HTTP_TIMEOUT_S = float(os.environ.get("BAOXUE_NOTIFY_HTTP_TIMEOUT_S", "10"))
    # Hosts a robot webhook may point at (comma-separated): the service posts nowhere else.
    NOTIFY_WEBHOOK_HOSTS = os.environ.get("BAOXUE_NOTIFY_WEBHOOK_HOSTS", "qyapi.weixin.qq.com,oapi.dingtalk.com")
    # Start the LibreOffice converter when the app starts (the run script sets it) instead of on
    # the first PDF.
    PDF_PREWARM = _env_bool("BAOXUE_PDF_PREWARM", False)
    # Modules whose @job_task kinds a worker must know.
    JOB_MODULES = ("cases.documents.batch",)
    MAX_UPLOAD_BYTES = int(os.environ.get("BAOXUE_MAX_UPLOAD_MB", "64")) * 1024 * 1024
    TESTING = False


def secret_problems(config: Mapping) -> list[str]:
    """What is wrong with the configured secrets (empty: nothing), naming the variable to set."""
    out = []
    for key, env, default in (("SECRET_KEY", "SECRET_KEY", DEV_SECRET_KEY),
                              ("QR_HMAC_SECRET", "BAOXUE_QR_SECRET", DEV_QR_SECRET)):
        value = config.get(key) or ""
        if value == default:
            out.append(f"{env} 仍是公开的开发默认值")
        elif len(value) < MIN_SECRET_LENGTH:
            out.append(f"{env} 太短（{len(value)} 个字符，至少 {MIN_SECRET_LENGTH} 个）")
    old = config.get("QR_OLD_SECRETS") or ()
    for n, value in enumerate([old] if isinstance(old, str) else old, 1):
        if value == DEV_QR_SECRET:
            out.append(f"BAOXUE_QR_OLD_SECRETS 第{n}个是公开的开发默认值（开发密钥签的二维码不能当作旧密钥接受）")
        elif len(value) < MIN_SECRET_LENGTH:
            out.append(f"BAOXUE_QR_OLD_SECRETS 第{n}个太短（{len(value)} 个字符，至少 {MIN_SECRET_LENGTH} 个）")
    return out


class TestConfig(Config):
    """Tests: a fresh database and output folder are supplied by the fixtures."""

    TESTING = True
    HUEY_IMMEDIATE = True
    QR_HMAC_SECRET = "test-qr-secret"
    SECRET_KEY = "test"
    PASSWORD_HASH = "cheap"
