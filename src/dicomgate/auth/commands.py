"""``dicomgate apikey create | revoke | list``."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass

from sqlalchemy.ext.asyncio import AsyncSession

from dicomgate.audit.service import AuditEntry, record_event
from dicomgate.auth.models import ApiKey
from dicomgate.auth.policy import ALL_SCOPES
from dicomgate.auth.service import create_api_key, describe_key, list_api_keys, revoke_api_key
from dicomgate.db import create_engine, create_sessionmaker, session_scope
from dicomgate.errors import DicomgateError
from dicomgate.settings import Settings


async def _audit(session: AsyncSession, action: str, row: ApiKey) -> None:
    """Key changes happen on the server's console: record them with the OS user as actor."""
    await record_event(
        session,
        AuditEntry(
            at=datetime.datetime.now(datetime.UTC),
            actor=f"cli:{getpass.getuser()}",
            action=action,
            method="CLI",
            route="dicomgate apikey",
            client="cli",
            status_code=200,
            resource={"api_key": row.name, "scopes": row.scopes.split()},
        ),
    )


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            if args.apikey_command == "create":
                row, key = await create_api_key(session, name=args.name, scopes=args.scopes)
                await _audit(session, "apikey_create", row)
                print(describe_key(row))
                print(f"key (shown once, store it now): {key}")
            elif args.apikey_command == "revoke":
                row = await revoke_api_key(session, name=args.name)
                await _audit(session, "apikey_revoke", row)
                print(describe_key(row))
            else:
                for row in await list_api_keys(session):
                    print(describe_key(row))
    except DicomgateError as exc:
        print(f"error: {exc.message}")
        return 1
    finally:
        await engine.dispose()
    return 0


def _handler(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(settings, args))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("apikey", help="service-to-service API keys")
    parser.set_defaults(needs_database=True)
    sub = parser.add_subparsers(dest="apikey_command", required=True)
    create = sub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scopes",
        required=True,
        type=lambda s: s.replace(",", " ").split(),
        help=f"space/comma separated: {' '.join(sorted(ALL_SCOPES))}",
    )
    create.set_defaults(func=_handler)
    revoke = sub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(func=_handler)
    sub.add_parser("list", help="list keys (never their secrets)").set_defaults(func=_handler)
