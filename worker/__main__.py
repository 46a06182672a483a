"""`python -m worker`: run the worker until SIGINT/SIGTERM, then finish in-flight work and stop."""

import asyncio

from shared.logging import configure_logging
from worker.app import create_app


def main() -> None:
    configure_logging("worker")
    asyncio.run(create_app().run())


if __name__ == "__main__":
    main()
