"""Starts the web interface, as `csto-qa serve` does (options: --host, --port, --corpus, --index)."""

import sys

from csto_qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
