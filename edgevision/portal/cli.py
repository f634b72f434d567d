"""`edgevision portal`: the Custom Vision Training and Prediction APIs (and, later, pages) on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgevision.portal.settings import PortalSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    portal = subparsers.add_parser(
        "portal",
        help="run Custom Vision's Training and Prediction APIs offline (the official SDK works against it)",
        description="Serve the Custom Vision Training API (v3.3, v3.4-preview) and Prediction API (v3.0, v3.1)"
        " over the local trainer. Keys: TRAINING_KEY / PREDICTION_KEY (or *_KEY_FILE); beyond loopback both are"
        " required unless --insecure. See docs/portal.md.",
    )
    portal.add_argument("--data", metavar="DIR", help="data folder (env PORTAL_DATA_DIR; default ./portal-data)")
    portal.add_argument(
        "--database",
        metavar="URL",
        help="postgresql://user@host:port/dbname for the rows (env PORTAL_DATABASE_URL; default SQLite in --data)",
    )
    portal.add_argument("--host", help="address to listen on (env PORTAL_HOST; default 127.0.0.1)")
    portal.add_argument("--port", type=int, help="TCP port (env PORTAL_PORT; default 8080)")
    portal.add_argument("--published", metavar="DIR", help="the scoring service's PUBLISHED_DIR to publish into")
    portal.add_argument(
        "--insecure", action="store_true", default=None, help="allow listening beyond loopback without keys"
    )
    portal.add_argument(
        "--copy-to",
        metavar="TARGET",
        help="copy this portal's rows (SQLite in --data, or --database) into TARGET, a new postgresql:// database"
        " or SQLite file, then exit; then run the portal with --database TARGET on the same --data",
    )
    portal.set_defaults(func=run_portal)


def run_portal(args: argparse.Namespace) -> int:
    from edgevision.portal.server import serve
    from edgevision.portal.settings import PortalSettings

    settings = PortalSettings.from_env(
        data_dir=args.data,
        database_url=args.database,
        host=args.host,
        port=args.port,
        published_dir=args.published,
        insecure=args.insecure,
    )
    if args.copy_to:
        return copy_database(settings, args.copy_to)
    serve(settings)
    return 0


def copy_database(settings: PortalSettings, target_text: str) -> int:
    from edgevision.portal.copy import copy_rows, open_target
    from edgevision.portal.db import DatabaseError, open_database, redacted

    url = settings.database_url.get_secret_value() if settings.database_url else None
    if url is None and not (settings.data_dir / "portal.db").is_file():
        raise DatabaseError(f"no portal database in {settings.data_dir} (give --data, or --database for PostgreSQL)")
    own = url or str((settings.data_dir / "portal.db").resolve())
    if target_text == own or (url is None and Path(target_text).resolve() == Path(own)):
        raise DatabaseError("--copy-to names the portal's own database: give a new one")
    source = open_database(url, settings.data_dir)
    target = open_target(target_text)
    try:
        copied = copy_rows(source, target)
    finally:
        source.close()
        target.close()
    counts = ", ".join(f"{count} {table}" for table, count in copied.items() if count)
    shown = redacted(target_text)
    print(f"copied {counts or 'no rows'} into {shown}; now run the portal with --database on this --data")
    return 0
