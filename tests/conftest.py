"""One local Spark session with Delta for the whole suite (Spark takes ~10 s to start)."""

from __future__ import annotations

import pytest

from film2vec.config import SparkConfig


@pytest.fixture(scope="session")
def spark():
    from film2vec.spark import get_spark

    session = get_spark(SparkConfig(master="local[2]", shuffle_partitions=2, driver_memory="2g"), "film2vec-tests")
    yield session
    session.stop()
