"""Entry point: configures logging (stderr, for journald) and runs the CLI."""

from __future__ import annotations

import logging
import os
import sys

from maild.cli import main as cli_main


def main() -> None:
    """Configure logging once, then hand over to the command line."""
    logging.basicConfig(
        level=os.environ.get("MAILD_LOG_LEVEL", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # mail-parser warns about every MIME type it does not render; not ours to act on.
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    sys.exit(cli_main())


if __name__ == "__main__":
    main()
