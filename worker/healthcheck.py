"""`python -m worker.healthcheck`: exit 0 while the worker's heartbeat is fresh."""

import sys
import time
from pathlib import Path

from shared.settings import get_settings

MAX_AGE_S = 30.0


def main() -> int:
    path = Path(get_settings().worker_heartbeat_file)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        print(f"no heartbeat at {path}")
        return 1
    print(f"heartbeat {age:.1f}s old")
    return 0 if age < MAX_AGE_S else 1


if __name__ == "__main__":
    sys.exit(main())
