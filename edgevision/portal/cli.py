"""`edgevision portal`: the Custom Vision Training and Prediction APIs (and, later, pages) on this machine."""

from __future__ import annotations

import argparse


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
    serve(settings)
    return 0
