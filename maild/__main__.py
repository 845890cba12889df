"""Entry point: configures logging (stderr, for journald) and runs the CLI."""

from __future__ import annotations

import sys

from maild.cli import main as cli_main
from maild.runtime.logs import configure_logging


def main() -> None:
    """Run the command line; it configures logging here once its settings are read."""
    sys.exit(cli_main(configure_logging=configure_logging))


if __name__ == "__main__":
    main()
