"""spark-submit entry point: run the whole pipeline (`film2vec run`; same flags)."""

import sys

from film2vec.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
