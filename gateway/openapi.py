"""`python -m gateway.openapi [DIR]`: write DIR/openapi.json, the gateway's OpenAPI document (`make docs`)."""

import json
import sys
from pathlib import Path

from gateway.app import create_app


def openapi_json() -> str:
    """The document as written to docs/openapi.json."""
    return json.dumps(create_app().openapi(), indent=2) + "\n"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    out.mkdir(parents=True, exist_ok=True)
    (out / "openapi.json").write_text(openapi_json(), encoding="utf-8")


if __name__ == "__main__":
    main()
