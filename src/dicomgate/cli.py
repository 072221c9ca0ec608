"""The ``dicomgate`` command: serve, db upgrade, and the commands each domain registers."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from dicomgate import __version__
from dicomgate.phi import RevealPhi
from dicomgate.redaction import RedactCredentials
from dicomgate.requestid import RequestIdFilter
from dicomgate.settings import Settings

# Each module has ``register(subparsers)`` adding its sub-command (the key); a parsed command
# carries ``handler(args, settings) -> int`` as its ``func``. A command line naming one of them
# imports only that module: ``dicomgate transcode`` need not load the database, the web stack
# and every other domain before its workers start.
COMMAND_MODULES: dict[str, str] = {
    "patients": "dicomgate.patients.commands",
    "convert-to-htj2k": "dicomgate.conversions.commands",
    "worker": "dicomgate.conversions.worker",
    "rules": "dicomgate.rules.commands",
    "transcode": "dicomgate.codec.commands",
    "apikey": "dicomgate.auth.commands",
    "demo": "dicomgate.demo",
}

Handler = Callable[[argparse.Namespace, Settings], int]


def log_formatter(log_format: str) -> logging.Formatter:
    """JSON lines (one object per record, extras as fields) or a readable line."""
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            "%(levelname)s %(name)s %(request_id)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601, UTC
        )
    return logging.Formatter("%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s")


def configure_logging(settings: Settings) -> None:
    """Readable (or JSON-lines) logs on stderr at the configured level, request id on each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if settings.log_phi:
        handler.addFilter(RevealPhi())
    handler.addFilter(RedactCredentials())  # after RevealPhi: it reads the final message
    handler.setFormatter(log_formatter(settings.log_format))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    # httpx logs every request URL at INFO: noise, and URLs can carry identifiers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic announces each of its built-in plugins at INFO whenever it loads: noise.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from dicomgate.app import create_app
    from dicomgate.errors import ConfigurationError
    from dicomgate.server import bounded_head_protocol

    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        print(f"dicomgate: {exc.message}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        # The client address is decided in one place, create_app (DICOMGATE_TRUSTED_PROXIES):
        # uvicorn's own handling would trust X-Forwarded-For from any loopback peer.
        proxy_headers=False,
        # httptools with a cap on the request line + headers (431 beyond it): always, so no
        # deployment (scripts/run, the Dockerfile, compose) serves without it.
        http=bounded_head_protocol(settings.max_header_bytes),
        # Our handler and format for uvicorn's records too; no uvicorn access log: its raw path
        # and query can carry patient IDs and names. dicomgate.metrics writes the access line
        # with the route template instead.
        log_config=None,
        access_log=False,
    )
    return 0


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from alembic import command

    from dicomgate.migrations import alembic_config, database_location, prepare_location

    prepare_location(settings)
    command.upgrade(alembic_config(settings), args.revision)
    print(f"database {database_location(settings.database_url)} at revision {args.revision}")
    return 0


def _db_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    from alembic import command

    from dicomgate.migrations import alembic_config

    command.downgrade(alembic_config(settings), args.revision)
    print(f"database downgraded to {args.revision}")
    return 0


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from dicomgate.app import create_app

    # The schema does not depend on keys being configured: build without starting anything.
    logging.getLogger("dicomgate.app").setLevel(logging.ERROR)
    app = create_app(settings.model_copy(update={"auth_enabled": False}))
    json.dump(app.openapi(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``argv`` naming a registered command, only its module is
    imported (the other commands are then unknown to this parser)."""
    parser = argparse.ArgumentParser(
        prog="dicomgate", description="Lossless HTJ2K gateway in front of Orthanc."
    )
    parser.add_argument("--version", action="version", version=f"dicomgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=_serve, needs_database=True)

    sub.add_parser("openapi", help="print the OpenAPI schema (no server started)").set_defaults(
        func=_openapi
    )

    db = sub.add_parser("db", help="database schema (Alembic)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_db_upgrade)
    down = db_sub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision")
    down.set_defaults(func=_db_downgrade)

    for name in _modules_for(argv):
        importlib.import_module(name).register(sub)
    return parser


def _modules_for(argv: Sequence[str] | None) -> list[str]:
    """The command modules a command line needs: the one it names first, else all of them."""
    first = next((arg for arg in argv or () if not arg.startswith("-")), None)
    if first in COMMAND_MODULES:
        return [COMMAND_MODULES[first]]
    return list(COMMAND_MODULES.values())


def check_database(settings: Settings) -> str | None:
    """Why a command cannot use the configured database (not migrated, unreachable), or None."""
    import asyncio

    from dicomgate.errors import DicomgateError
    from dicomgate.migrations import ensure_database_current

    try:
        asyncio.run(ensure_database_current(settings))
    except DicomgateError as exc:
        return exc.message
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    # Commands that read or write the database (``needs_database`` on their parser) all
    # refuse an unmigrated or unreachable one the same way, before doing anything.
    if getattr(args, "needs_database", False):
        problem = check_database(settings)
        if problem is not None:
            print(f"dicomgate: {problem}", file=sys.stderr)
            return 2
    handler: Handler = args.func
    return handler(args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
