"""Issue the mTLS material for a deployment: one bundle per service, the CA key kept apart.

Usage: `python deploy/issue_certs.py OUT_DIR`. Writes `OUT_DIR/ca/` (ca.pem and ca.key: keep the
key offline, it can mint any identity) and `OUT_DIR/<service>/` holding exactly ca.pem,
<service>.pem and <service>.key — what one pod mounts at `$CLEARHOUSE_VAR_DIR/certs`
(`kubectl create secret generic clearhouse-certs-<service> --from-file=OUT_DIR/<service>/`; the
compose stack's `certs` job runs this into a volume). Re-running keeps existing material, so it is
safe to run on every `docker compose up`.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil

from chassis import tls

# Identities that run as a process of the deployment (`tools` is for operators' own machines).
DEPLOYED_IDENTITIES = ("gateway", "payments", "vault", "ledger", "provider")


def issue(out_dir: pathlib.Path, identities: tuple[str, ...] = DEPLOYED_IDENTITIES) -> None:
    """Create (or keep) the CA under out_dir/ca and one bundle per identity."""
    ca_dir = out_dir / "ca"
    for name in identities:
        tls.ensure_identity(ca_dir, name)
        bundle = out_dir / name
        bundle.mkdir(parents=True, exist_ok=True)
        for file_name in ("ca.pem", f"{name}.pem", f"{name}.key"):
            shutil.copy2(ca_dir / file_name, bundle / file_name)
        # A private key readable by its owner only, wherever it is copied.
        (bundle / f"{name}.key").chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", type=pathlib.Path)
    arguments = parser.parse_args(argv)
    issue(arguments.out_dir)
    for name in DEPLOYED_IDENTITIES:
        print(f"{arguments.out_dir / name}: ca.pem {name}.pem {name}.key", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
