"""film2vec: vectors of catalogue assets learned from who watched what, on Apache Spark."""

__version__ = "0.1.0"
