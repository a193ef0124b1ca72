"""How many seasons a run trains under --seasons 0: the stopping rule, the slice it scores, and the trainer
stopping on a plateau of the held-out figures while going on through a rise."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from film2vec.config import Config, ConfigError, TrainConfig
from film2vec.evaluation.protocol import next_watch
from film2vec.seasons.stage import stops_on_held_out
from film2vec.seasons.walks import Negatives
from film2vec.train.stopping import DEEP, DEEP_K, SeasonScore, StopRule, Validation, gain_score, gain_standard_error
from film2vec.train.trainer import train


def figures(*deep: float) -> list[dict[str, float]]:
    """A curve of held-out figures whose gain follows `deep` (Recall@20 moves the other way: it is not judged)."""
    return [{"recall_at_20": 1.0 - value, "ndcg_at_20": 0.0, DEEP: value} for value in deep]


def test_the_rule_stops_after_a_season_without_gain_between_the_floor_and_the_ceiling():
    rule = StopRule(min_seasons=3, max_seasons=6, gain_standard_errors=0)
    assert rule.reason(figures(0.1)) is None
    assert rule.reason(figures(0.1, 0.09)) is None  # below the floor: no judgement yet
    assert "season 2 brought no gain" in rule.reason(figures(0.1, 0.09, 0.1))  # equal to the best is no gain
    assert rule.reason(figures(0.1, 0.09, 0.11)) is None
    assert "season 3 brought no gain" in rule.reason(figures(0.1, 0.2, 0.3, 0.25))
    assert rule.reason(figures(0.1, 0.2, 0.3, 0.4, 0.5)) is None  # a rise goes on
    assert "ceiling of 6 seasons" in rule.reason(figures(0.1, 0.2, 0.3, 0.4, 0.5, 0.6))
    assert gain_score({DEEP: 0.25, "genre_p_at_10": 0.5, "recall_at_20": 0.9}) == 0.75
    assert gain_score({DEEP: 0.25, "genre_p_at_10": float("nan")}) == 0.25


def test_a_gain_within_the_slices_noise_is_no_gain_and_one_beyond_it_goes_on():
    rng = np.random.default_rng(0)
    users, assets = 1_000, 400
    base = {DEEP: rng.uniform(0, 1, users), "genre_p_at_10": rng.uniform(0, 1, assets)}

    def season(start: dict[str, np.ndarray], shift: float) -> dict[str, np.ndarray]:
        """Every user's and asset's term moved from `start` by `shift` on average, each by its own noise."""
        noise = {name: rng.normal(0, 0.1, len(values)) for name, values in start.items()}
        return {name: values + shift + noise[name] - noise[name].mean() for name, values in start.items()}

    noisy, real = season(base, 0.002), season(base, 0.03)
    real_then_noisy = season(real, 0.002)
    expected = np.sqrt(sum(np.var(noisy[name] - base[name], ddof=1) / len(base[name]) for name in base))
    assert gain_standard_error(noisy, base) == pytest.approx(expected)
    assert gain_standard_error(noisy, base) == pytest.approx(np.sqrt(0.01 / users + 0.01 / assets), rel=0.1)

    def curve(*seasons: dict[str, np.ndarray]) -> list[dict[str, float]]:
        return [{name: float(np.mean(values)) for name, values in terms.items()} for terms in seasons]

    strict, lax = StopRule(2, 10, gain_standard_errors=2.0), StopRule(2, 10, 0)
    assert gain_score(curve(noisy)[0]) > gain_score(curve(base)[0])  # a gain by its point estimate ...
    assert lax.reason(curve(base, noisy), [base, noisy]) is None  # ... which the rule without noise takes
    stopped = strict.reason(curve(base, noisy), [base, noisy])  # ... and 2 standard errors (0.0058) do not
    assert "season 1 brought no gain" in stopped and "standard error 0.0058" in stopped
    assert strict.reason(curve(base, real), [base, real]) is None  # 0.06 is far beyond the noise
    # judged against the best season, paired with it: real_then_noisy gains 0.004 on `real`, within its noise
    assert "season 2 brought no gain" in strict.reason(
        curve(base, real, real_then_noisy), [base, real, real_then_noisy]
    )
    assert strict.reason(curve(base, noisy)) is None  # seasons whose terms are unknown (an old checkpoint): the means


def test_the_slice_ranks_against_the_whole_catalogue_and_labels_count_only_when_there_are_some():
    # users 0 and 1: two views each kept (assets 0, 1 and 2, 3), the last held out (assets 1 and 4)
    user = np.array([0, 0, 0, 1, 1, 1])
    asset = np.array([0, 2, 1, 2, 3, 4])
    held_out = np.array([False, False, True, False, False, True])
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8))
    validation = Validation.of_slice(user, asset, held_out, 50, np.full(50, 30), [set()] * 50)
    assert validation.genres is None and validation.users == 2
    scored = validation.score(vectors)
    assert set(scored.figures) == {"recall_at_20", "ndcg_at_20", DEEP} and set(scored.terms) == {DEEP}
    by_hand = next_watch(vectors, validation.split, DEEP_K, catalogue=np.arange(50))
    assert scored.figures[DEEP] == by_hand[DEEP] == np.mean(scored.terms[DEEP]) and len(scored.terms[DEEP]) == 2
    only_slice = next_watch(vectors, validation.split, DEEP_K)  # five candidates, not fifty
    assert only_slice[DEEP] > scored.figures[DEEP]
    labelled = Validation.of_slice(user, asset, held_out, 50, np.full(50, 30), [{"a"}] * 25 + [{"b"}] * 25).score(
        vectors
    )
    shares = [np.mean(np.isin(row, range(25)) == (i < 25)) for i, row in enumerate(nearest(vectors, 10))]
    np.testing.assert_allclose(labelled.terms["genre_p_at_10"], shares)
    assert labelled.figures["genre_p_at_10"] == pytest.approx(np.mean(shares))


def nearest(vectors: np.ndarray, k: int) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


class PlantedCurve:
    """A slice whose figures are planted season by season (the trainer's side of the rule is under test here:
    the real figures of a real slice are tested above)."""

    def __init__(self, *deep: float) -> None:
        self.curve = figures(*deep)
        self.scored = 0
        self.users = 1

    def score(self, vectors: np.ndarray) -> SeasonScore:
        assert np.isfinite(vectors).all()
        self.scored += 1
        figures = self.curve[self.scored - 1]
        return SeasonScore(figures, {DEEP: np.full(3, figures[DEEP])})


@pytest.fixture(scope="module")
def seasons_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("stopping") / "seasons")
    rng = np.random.default_rng(0)
    for season in range(6):
        origin = rng.integers(0, 20, 500)
        table = pa.table(
            {
                "season": pa.array(np.full(500, season, dtype=np.int32)),
                "draw": pa.array(np.arange(500, dtype=np.int64)),
                "origin": pa.array(origin.astype(np.int32)),
                "target": pa.array(((origin + 1) % 20).astype(np.int32)),
            }
        )
        write_deltalake(path, table, mode="append", partition_by=["season"])
    return path


CONFIG = TrainConfig(dim=4, batch_size=128, device="cpu", lr_schedule="constant")


def test_the_trainer_stops_on_a_plateau_and_goes_on_through_a_rise(seasons_path, tmp_path):
    plateau = PlantedCurve(0.1, 0.2, 0.3, 0.3, 0.5, 0.6)
    stopped = train(
        seasons_path, range(6), 20, CONFIG, negatives=Negatives(2, 20), validation=plateau, stop_rule=StopRule(2, 6, 0)
    )
    assert stopped.seasons == [0, 1, 2, 3] and plateau.scored == 4
    assert "season 3 brought no gain" in stopped.stopped and stopped.curve == figures(0.1, 0.2, 0.3, 0.3)
    assert sum(report.samples for report in stopped.history) == 4 * 500

    rise = PlantedCurve(0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    ceiling = train(
        seasons_path, range(6), 20, CONFIG, negatives=Negatives(2, 20), validation=rise, stop_rule=StopRule(2, 6, 0)
    )
    assert ceiling.seasons == list(range(6)) and "ceiling of 6 seasons" in ceiling.stopped


def test_after_the_stop_the_season_that_adds_the_slice_back_trains_unscored(seasons_path):
    asked = []

    def added_back(season: int) -> int:
        asked.append(season)
        return 5  # where the caller drew it

    plateau = PlantedCurve(0.1, 0.2, 0.2, 0.9)
    options = {"negatives": Negatives(2, 20), "validation": plateau, "stop_rule": StopRule(2, 6, 0)}
    result = train(seasons_path, range(5), 20, CONFIG, added_back=added_back, **options)
    assert asked == [3] and result.seasons == [0, 1, 2, 5] and plateau.scored == 3 and len(result.curve) == 3
    assert [report.season for report in result.history] == [0, 1, 2, 5]
    without = train(seasons_path, range(5), 20, CONFIG, **{**options, "validation": PlantedCurve(0.1, 0.2, 0.2)})
    assert without.seasons == [0, 1, 2] and not np.allclose(without.vectors, result.vectors)


def test_a_resumed_run_keeps_the_curve_it_stopped_on(seasons_path, tmp_path):
    checkpoints = str(tmp_path / "checkpoints")
    options = {"negatives": Negatives(2, 20), "stop_rule": StopRule(2, 6, 0), "checkpoints": checkpoints}
    first = train(seasons_path, range(6), 20, CONFIG, validation=PlantedCurve(0.1, 0.2, 0.1), **options)
    again = PlantedCurve()  # a run started again after the stop trains and scores nothing more
    resumed = train(seasons_path, range(6), 20, CONFIG, validation=again, **options)
    assert first.seasons == resumed.seasons == [0, 1, 2] and again.scored == 0
    assert resumed.stopped == first.stopped and resumed.curve == first.curve
    np.testing.assert_array_equal(resumed.vectors, first.vectors)


def test_a_checkpoint_of_other_inputs_is_set_aside_with_the_reason(seasons_path, tmp_path, caplog):
    options = {"negatives": Negatives(2, 20), "checkpoints": str(tmp_path / "checkpoints")}
    first = train(seasons_path, [0, 1], 20, CONFIG, drawn_from={"catalogue": "a"}, **options)
    assert first.seasons == [0, 1] and (tmp_path / "checkpoints" / "checkpoint.pt").is_file()
    same = train(seasons_path, [0, 1], 20, CONFIG, drawn_from={"catalogue": "a"}, **options)
    assert same.resumed_seasons == [0, 1]  # the same inputs: nothing left to train
    other = train(seasons_path, [0, 1], 20, CONFIG, drawn_from={"catalogue": "b"}, **options)
    assert other.resumed_seasons == [] and len(other.history) == 2  # trained afresh
    assert "set aside: it was made with other drawn_from" in caplog.text


def test_a_walk_that_cannot_hold_views_out_is_refused_by_name():
    config = Config()
    assert stops_on_held_out(config)
    config.seasons.walk = "coview"
    with pytest.raises(ConfigError, match="the co-view walk reads pair counts of every view"):
        stops_on_held_out(config)
    config.seasons.seasons = 3  # a fixed count needs no slice
    assert not stops_on_held_out(config)
