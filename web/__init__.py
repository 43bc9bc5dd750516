"""Flask wiring: the database, the store, jobs, the API (flask-smorest) and the HTML pages."""

from __future__ import annotations

import logging

from flask import Flask, g, request
from flask_smorest import Api
from werkzeug.routing import IntegerConverter

from web.errors import handle_http_error, register_error_handlers
from web.openapi import ErrorOut, finish_spec

log = logging.getLogger(__name__)


class BaoxueApi(Api):
    """flask-smorest Api whose HTTP errors use our body ``{"error", "message", "fields"}`` — and
    whose document says so (``web.openapi``)."""

    ERROR_SCHEMA = ErrorOut

    def handle_http_exception(self, error):
        return handle_http_error(error)


# Each area of the service adds its endpoints in its own module with a ``blp`` Blueprint.
AREA_API_MODULES = ("web.api_engine", "web.api_handover", "web.api_ledgers", "web.api_scans", "web.auth.api",
                    "web.api_notify", "web.api_dossier")
# The HTML pages: each module has a Flask ``bp`` Blueprint (templates/web/, base.html, web.messages).
PAGE_MODULES = ("web.pages_work", "web.pages_cases", "web.pages_returns", "web.pages_handover",
                "web.pages_ledgers", "web.pages_audit", "web.pages_admin")


def _area_blueprints(modules=AREA_API_MODULES):
    import importlib

    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        yield getattr(module, "blp", None) or module.bp


class DbIntConverter(IntegerConverter):
    """``<int:...>`` that matches only ids the database can hold (0 .. 2^63-1): a larger number in
    a URL is a 404 like any id that does not exist, never an overflow deep in the driver."""

    def __init__(self, url_map, fixed_digits=0, min=None, max=None, signed=False):  # noqa: A002
        super().__init__(url_map, fixed_digits, min, 2**63 - 1 if max is None else max, signed)


def _installed_profiles(app: Flask, factory) -> None:
    """The region profiles installed in the database: read at start, and again at the start of a
    request whenever another process installed one (``cases.engine.installed.sync``)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from cases.engine import installed

    try:
        with factory() as session:
            installed.sync(session)
    except (OperationalError, ProgrammingError) as e:  # a database not migrated yet: shipped profiles only
        log.warning("installed region profiles not read (database not migrated?): %s", e.orig)
        installed.profiles.set_installed({})

    @app.before_request
    def _sync_profiles():
        if request.endpoint and request.endpoint != "static" and not request.endpoint.endswith(".static"):
            from web.context import db

            installed.sync(db())


def init_web(app: Flask) -> None:
    # Before any route is added: every ``<int:...>`` of every blueprint uses it.
    app.url_map.converters["int"] = DbIntConverter
    from cases.store import jobs
    from cases.store.db import create_schema, make_engine, make_session_factory
    from cases.store.services import Services, register

    engine = make_engine(app.config["DATABASE_URL"])
    if app.config.get("CREATE_SCHEMA"):
        create_schema(engine)
    factory = make_session_factory(engine)
    services = Services.from_config(app.config, factory)
    app.extensions["baoxue"] = services
    app.extensions["baoxue_engine"] = engine
    jobs.init_jobs(app.config, session_factory=factory)
    # The job kinds register themselves when their modules are imported.
    from cases.documents import batch  # noqa: F401
    from cases.dossier import jobs as dossier_jobs  # noqa: F401
    from cases.notify import delivery  # noqa: F401  (the notify_deliver queue task)
    from cases.returns import intake  # noqa: F401

    register(services)
    _installed_profiles(app, factory)

    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    from forms.converter_health import BREAKER

    BREAKER.configure(failures=app.config.get("PDF_FAILURES_BEFORE_503", 3),
                      retry_after_s=app.config.get("PDF_RETRY_AFTER_S", 30))

    from cases.documents import render_pool
    from forms import pdf

    # soffice ends up PDF_NICE below the web process either way: a renderer already runs RENDER_NICE
    # below it, and the soffice it starts inherits that
    render_nice = int(app.config.get("RENDER_NICE", 0))
    pool = render_pool.configure(int(app.config.get("RENDER_PROCESSES", 0) or 0),
                                 int(app.config.get("RENDER_PENDING", 8)), nice=render_nice,
                                 pdf_settings={**pdf.SETTINGS, "nice": max(0, int(pdf.SETTINGS["nice"]) - render_nice)},
                                 timeout=2 * services.pdf_timeout + 60)
    if app.config.get("PDF_PREWARM"):
        import threading

        # the renderers' LibreOffice (with a pool), or this process's own
        warm = (lambda: pool.start(render_pool.RenderSettings.of(services))) if pool else \
            pdf.get_converter(services.pdf_workers, services.pdf_timeout).start
        threading.Thread(target=warm, name="pdf-prewarm", daemon=True).start()

    from web.auth import init_auth

    init_auth(app)
    api = BaoxueApi(app)
    from web.api import blp, register_form_schemas
    from web.pages import pages

    api.register_blueprint(blp)
    for blueprint in _area_blueprints():
        api.register_blueprint(blueprint)
    register_form_schemas(api)
    finish_spec(app, api)
    app.register_blueprint(pages)
    for blueprint in _area_blueprints(PAGE_MODULES):
        app.register_blueprint(blueprint)
    from web.layout import init_layout

    init_layout(app)
    register_error_handlers(app)
    from web import dossier_cli, ops_cli

    ops_cli.register(app)
    ops_cli.register_backup(app)
    dossier_cli.register(app)
