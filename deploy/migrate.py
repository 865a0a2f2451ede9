"""Run each named service's Alembic migrations against its own database (production Job).

Usage: `python deploy/migrate.py ledger vault provider payments`. Each service reads only its own
`<SVC>_DATABASE_URL` (ledger → LEDGER_DATABASE_URL, …) so the Kubernetes Job can give each
container the credentials of one database and nothing else. Services do not migrate at start-up
in production (`migrate_on_start` defaults off there): schema changes run once, before the new
pods roll out, instead of racing between replicas.

Kept in deploy/ as a script rather than in the chassis: it is an operator's entry point, and it
only calls `chassis.db.migrate` with each service's own migration folder.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import pathlib
import sys

from chassis import db

# Service name → (Python package holding migrations/, environment variable of its database).
SERVICES: dict[str, tuple[str, str]] = {
    "ledger": ("ledger_svc", "LEDGER_DATABASE_URL"),
    "vault": ("vault_svc", "VAULT_DATABASE_URL"),
    "provider": ("provider_sim", "PROVIDER_DATABASE_URL"),
    "payments": ("payments_svc", "PAYMENTS_DATABASE_URL"),
}


class MigrationError(RuntimeError):
    """A service cannot be migrated as configured; the message says why."""


def migrations_folder(package: str) -> pathlib.Path:
    """The package's migrations/ folder, found without importing (and so starting) the service."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MigrationError(f"package {package} is not importable (is PYTHONPATH set?)")
    folder = pathlib.Path(next(iter(spec.submodule_search_locations))) / "migrations"
    if not (folder / "env.py").is_file():
        raise MigrationError(f"{folder} has no Alembic env.py")
    return folder


async def migrate(service: str, environ: dict[str, str]) -> None:
    """Upgrade one service's database to the newest revision."""
    package, variable = SERVICES[service]
    url = environ.get(variable, "").strip()
    if not url:
        raise MigrationError(f"{variable} is not set")
    await db.migrate(migrations_folder(package), url)


def main(argv: list[str] | None = None) -> int:
    """Entry point: migrate the services named on the command line, in order."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("services", nargs="+", choices=sorted(SERVICES))
    arguments = parser.parse_args(argv)
    for service in arguments.services:
        try:
            asyncio.run(migrate(service, dict(os.environ)))
        except MigrationError as error:
            print(f"migrate {service}: {error}", file=sys.stderr, flush=True)
            return 2
        print(f"migrate {service}: at head", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
