"""spark-submit entry point: draw seasons of samples into DIR/seasons (`film2vec sample`; same flags)."""

import sys

from film2vec.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
