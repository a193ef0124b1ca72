"""spark-submit entry point: the nightly refresh, new views to a warm-started model (`film2vec refresh`; same flags)."""

import sys

from film2vec.cli import main

if __name__ == "__main__":
    sys.exit(main(["refresh", *sys.argv[1:]]))
