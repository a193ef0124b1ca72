"""The sampler's pure side: exact integer weights, the plan of origins and negatives, no Spark imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from film2vec.config import SeasonsConfig
from film2vec.errors import InputError
from film2vec.seasons.sampler import integer_weights, negatives_plan, sampling_plan, season_samples


def test_fractional_co_views_become_proportional_integer_weights():
    counts = np.array([1, 7, 3], dtype=np.int64)
    np.testing.assert_array_equal(integer_weights(counts), counts)
    weighted = integer_weights(np.array([0.5, 1 / 3, 1e-9, 2.25]))
    assert weighted.dtype == np.int64 and weighted.min() >= 1
    np.testing.assert_allclose(weighted[[0, 1, 3]] / weighted[0], [1, 2 / 3, 4.5], rtol=1e-5)


def test_the_plan_weighs_origins_by_views_and_draws_negatives_from_the_whole_catalogue():
    views = np.array([1, 4, 9, 16])
    origins = sampling_plan(SeasonsConfig(origin_distribution="views", origin_exponent=0.5), views, views)
    assert origins.exponent == 0.5 and origins.scale == pytest.approx(
        SeasonsConfig().samples_per_view * 30 / 10
    )  # views 1+4+9+16, √views 1+2+3+4
    uniform = negatives_plan(SeasonsConfig(negatives=7), views)
    assert (
        season_samples(SeasonsConfig(samples_per_view=30, season_samples_per_asset=None), views) == 30 * 30
    )  # unbounded
    assert season_samples(SeasonsConfig(samples_per_view=30, season_samples_per_asset=300), views) == 30 * 30
    capped = SeasonsConfig(samples_per_view=30, season_samples_per_asset=100)
    assert season_samples(capped, views) == 4 * 100  # at most 100 a starting asset
    plan = sampling_plan(capped, views, views)  # 1 and 4 views keep 30 samples a view, 9 and 16 share the rest
    assert plan.scale == 30 and plan.most == pytest.approx((400 / 30 - 5) / 2)
    assert (uniform.count, uniform.n_assets, uniform.cumulative) == (7, 4, None)
    unigram = negatives_plan(SeasonsConfig(negative_distribution="unigram", unigram_exponent=0.5), views)
    np.testing.assert_allclose(np.diff(unigram.cumulative, prepend=0) / unigram.cumulative[-1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(InputError, match="2 assets in the catalogue"):
        sampling_plan(SeasonsConfig(), views[:2], views[:2])
    with pytest.raises(InputError, match="no asset shares a viewer"):
        sampling_plan(SeasonsConfig(), views, views[:0])


def test_the_pure_modules_import_without_spark_torch_or_mlflow():
    modules = (
        "film2vec.seasons.sampler, film2vec.seasons.walks, film2vec.evaluation.protocol, film2vec.serving.nearest, "
        "film2vec.labels, film2vec.tables, film2vec.apps.ranking"
    )
    heavy = "{'pyspark', 'torch', 'mlflow'}"
    code = f"import sys, {modules}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"
