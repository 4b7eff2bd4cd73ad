"""``python -m app.data init``: migrate our stores to the latest schema and seed the demo CRM."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import SQLAlchemyError

from app.data.db import get_engine, upgrade
from app.data.seed import seed_crm
from app.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.data", description=__doc__)
    parser.add_argument("command", choices=["init", "migrate"])
    parser.add_argument("--url", help="database URL (default: settings.db_url)")
    args = parser.parse_args(argv)
    url = args.url or get_settings().db_url
    try:
        upgrade(url)
        if args.command == "init":
            added = seed_crm(get_engine(url))
            print(f"stores ready at {url} ({added} demo rows added)")
    except (SQLAlchemyError, OSError) as exc:
        print(f"error: cannot prepare the stores at {url}: {exc.__class__.__name__}: {exc}".splitlines()[0],
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
