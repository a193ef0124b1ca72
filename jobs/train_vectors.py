"""spark-submit entry point: train vectors, log to MLflow and register the model (`film2vec train`; same flags)."""

import sys

from film2vec.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
