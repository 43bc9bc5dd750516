"""Application factory: config, extensions, blueprints, error handlers. Nothing else."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from config import Config, secret_problems

log = logging.getLogger(__name__)


class InsecureConfiguration(RuntimeError):
    """Production settings with a default or short secret: the service does not start."""


class JSONProvider(DefaultJSONProvider):
    """ISO 8601 dates in every JSON answer (Flask's default is an HTTP date string); Chinese as
    itself, not ``\\uXXXX`` escapes (UTF-8 on the wire)."""

    ensure_ascii = False

    @staticmethod
    def default(o):
        if isinstance(o, (dt.date, dt.datetime)):
            return o.isoformat()
        return DefaultJSONProvider.default(o)


def create_app(config: type[Config] | Config | dict | None = None) -> Flask:
    """Build the Flask app. ``config`` is a Config class/instance or a dict of overrides."""
    app = Flask(__name__, template_folder="templates/web", static_folder=None)
    app.json = JSONProvider(app)
    app.config.from_object(Config)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"]
    app.config.setdefault("API_TITLE", "Baoxue 控辍保学文书与案卷 API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v1")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    Path(app.config["OUTPUT_DIR"]).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _check_secrets(app)

    from web import init_web

    init_web(app)
    return app


def _check_secrets(app: Flask) -> None:
    """Production refuses default or short secrets; development says so loudly at every start."""
    problems = secret_problems(app.config)
    if not problems:
        return
    text = "；".join(problems)
    if app.config.get("ENV_NAME") == "production":
        raise InsecureConfiguration(f"BAOXUE_ENV=production，拒绝启动：{text}。请设置足够长的随机值，例如 "
                                    "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'")
    if not app.config.get("TESTING"):
        banner = "!" * 78
        log.warning("\n%s\n  开发模式：%s。\n  任何人都能伪造会话和文书二维码；正式使用前设置 BAOXUE_ENV=production "
                    "和这些密钥。\n%s", banner, text, banner)
