"""Write the compose stack's secret env files (deploy/secrets/<service>.env), random, once.

Usage: `python deploy/compose_secrets.py` (or with an output folder). If any file exists nothing
is written, so re-running never rotates a secret under a running database. The files hold what
Kubernetes keeps in the `clearhouse-<service>` Secrets: one process reads only its own file. A
secret a service adds later goes into its file by hand (or delete them all, on a fresh stack only).
"""

from __future__ import annotations

import argparse
import base64
import pathlib
import secrets

SECRET_BYTES = 32  # 43 url-safe characters: above chassis.settings.SECRET_LENGTH_MIN (32).
DEFAULT_OUT_DIR = pathlib.Path(__file__).resolve().parent / "secrets"
DATABASE_SERVICES = ("ledger", "vault", "provider", "payments")


def token() -> str:
    """A fresh random secret."""
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_files(postgres_password: str, shared: dict[str, str]) -> dict[str, dict[str, str]]:
    """Variables per file; `shared` holds values two processes must agree on."""
    files: dict[str, dict[str, str]] = {"postgres": {"POSTGRES_PASSWORD": postgres_password}}
    for service in DATABASE_SERVICES:
        url = f"postgresql://clearhouse:{postgres_password}@postgres:5432/{service}"
        files[service] = {f"{service.upper()}_DATABASE_URL": url}
    # Key-encryption keys by version, "<version>:<base64 of 32 bytes>[,…]" (vault_svc/settings.py).
    files["vault"]["VAULT_KEYS"] = "1:" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
    files["vault"]["VAULT_FINGERPRINT_KEY"] = token()
    files["provider"].update(
        PROVIDER_A_WEBHOOK_SECRET=shared["PROVIDER_A_WEBHOOK_SECRET"],
        PROVIDER_B_WEBHOOK_SECRET=shared["PROVIDER_B_WEBHOOK_SECRET"],
        PROVIDER_FINGERPRINT_KEY=token(),
    )
    files["payments"].update(
        CLEARHOUSE_ADMIN_KEY=shared["CLEARHOUSE_ADMIN_KEY"],
        PAYMENTS_IDEMPOTENCY_HASH_KEY=token(),
        # The provider signs its webhooks with these; payments verifies them.
        PROVIDER_A_WEBHOOK_SECRET=shared["PROVIDER_A_WEBHOOK_SECRET"],
        PROVIDER_B_WEBHOOK_SECRET=shared["PROVIDER_B_WEBHOOK_SECRET"],
    )
    # The gateway holds no secret today (it forwards the caller's key to payments); the file
    # exists so that one it gains later has a place that compose already reads.
    files["gateway"] = {}
    return files


def write(out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Create every env file under out_dir (mode 0600), or none if any exists; return those written.

    All or nothing: the files share values (admin key, webhook secrets, the database password),
    so regenerating only some of them would leave two processes disagreeing.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("*.env")):
        return []
    shared = {
        "CLEARHOUSE_ADMIN_KEY": "sk_admin_" + token(),
        "PROVIDER_A_WEBHOOK_SECRET": token(),
        "PROVIDER_B_WEBHOOK_SECRET": token(),
    }
    written = []
    for name, variables in secret_files(token(), shared).items():
        path = out_dir / f"{name}.env"
        path.touch(mode=0o600)
        path.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", nargs="?", type=pathlib.Path, default=DEFAULT_OUT_DIR)
    arguments = parser.parse_args(argv)
    for path in write(arguments.out_dir):
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
