"""The uses of the vectors: pure functions over arrays, called by film2vec.apps.stage."""
