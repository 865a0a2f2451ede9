"""Put the repository root and protos/ (generated bindings) on the venv's import path.

A .pth file rather than an editable install: the services, the chassis and the generated
`clearhouse` package then import the same way from `python -m`, pytest, mypy and scripts.
"""

import pathlib
import sysconfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
site_packages = pathlib.Path(sysconfig.get_paths()["purelib"])
(site_packages / "clearhouse_repo.pth").write_text(f"{ROOT}\n{ROOT / 'protos'}\n")
print(f"linked {ROOT} into {site_packages}")
