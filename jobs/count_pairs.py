"""spark-submit entry point: validate view events and count co-views into DIR/pairs (`film2vec pairs`; same flags)."""

import sys

from film2vec.cli import main

if __name__ == "__main__":
    sys.exit(main(["pairs", *sys.argv[1:]]))
