"""`python -m worker`: run the worker until SIGINT/SIGTERM, then finish in-flight work and stop."""

import asyncio
import logging

from worker.app import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(create_app().run())


if __name__ == "__main__":
    main()
