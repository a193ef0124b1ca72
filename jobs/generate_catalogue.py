"""spark-submit entry point: write the synthetic catalogue (`film2vec generate`; same flags)."""

import sys

from film2vec.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
