"""Fuzzed events through ingestion → pair counts → one season: correct output or a clear InputError.

Hypothesis draws small event tables (CSV text, or typed Parquet and Delta) mixing valid rows with bad and
null ids, wrong types, duplicates, extreme or missing times, empty partitions, non-ASCII ids, catalogues of
one asset and users with one view. Each row comes with whether it should be valid, so the expected pair
counts are a brute-force count over those rows, and every other row must be in DIR/rejects with a reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from film2vec.config import Config
from film2vec.errors import InputError
from film2vec.pairs.stage import count_pairs
from film2vec.seasons.stage import sample
from film2vec.seasons.walks import Negatives, stream_key

SAMPLES_PER_VIEW = 1.5
NEGATIVES = 2

# (text, usable as an id): text ids as they may arrive in CSV or a string column
TEXT_IDS = st.sampled_from(
    [
        ("1", True),
        ("2", True),
        ("3", True),
        (" 4 ", True),  # padded: trimmed
        ("NULL", False),  # a null token
        ("007", True),  # not canonical: makes the column text
        ("фильм", True),
        ("映画 2", True),
        ("é,à", True),  # a comma: quoted in CSV
        ("😀", True),
        (None, False),
        ("", False),
        ("   ", False),
        ("a\x01b", False),  # control character
        ("x" * 600, False),  # longer than MAX_STRING_ID
    ]
)
INTEGER_IDS = st.sampled_from([(1, True), (2, True), (3, True), (-5, True), (2**63 - 1, True), (None, False)])
# microseconds of the years 40000 and -20000 (Python's datetime stops at 9999)
FAR_FUTURE, FAR_PAST = 1_200_000_000_000_000_000, -693_000_000_000_000_000
# (text, usable as a time); CSV reads an empty field as null, which is a view without a time
TEXT_TIMES = st.sampled_from(
    [
        (None, True),
        ("", True),
        ("1700000000", True),
        ("1700000000.25", True),
        ("2025-03-04T05:06:07", True),
        ("2025-03-04", True),
        ("0", True),
        ("yesterday", False),
        ("99999999999999", False),  # beyond the year 2262
        ("1700000000000", False),  # milliseconds
        ("-99999999999999", False),
        ("1e9", False),
    ]
)
TIMESTAMPS = st.sampled_from(
    [
        (None, True),
        (dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), True),
        (dt.datetime(1700, 1, 1, tzinfo=dt.timezone.utc), True),
        (dt.datetime(2262, 4, 10, tzinfo=dt.timezone.utc), True),
        (dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc), False),  # outside the times every reader holds (1677-2262)
        (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc), False),
        (FAR_FUTURE, False),  # Parquet holds times beyond the years 1 to 9999, which text cannot reach
        (FAR_PAST, False),
    ]
)
SECONDS = st.sampled_from([(None, True), (1_700_000_000, True), (0, True), (2**62, False), (-(2**62), False)])
FLOAT_SECONDS = st.sampled_from(
    [(None, True), (1.7e9, True), (float("nan"), False), (float("inf"), False), (-1e300, False)]
)


def mostly_usable(values: st.SearchStrategy) -> st.SearchStrategy:
    """Usable values about half the time, so that enough examples get as far as a season."""
    return st.one_of(values.filter(lambda pair: pair[1]), values)


@dataclass(frozen=True)
class Events:
    """A drawn events table: how to write it, its rows, and each row's expected validity."""

    layout: str  # csv, parquet or delta
    user_type: pa.DataType | None  # typed layouts: the column types (None for CSV)
    asset_type: pa.DataType | None
    time_type: pa.DataType | None  # None: no viewed_at column
    rows: list[tuple]  # (user, asset, time)
    valid: list[tuple[bool, bool, bool]]  # per row: user, asset, time usable as given
    files: int  # Parquet and Delta: files the rows are split into, some of them empty

    @property
    def wrong_type(self) -> str | None:
        """The column a reader must refuse, if any."""
        for name, kind in (("user_id", self.user_type), ("asset_id", self.asset_type)):
            if kind is not None and not (pa.types.is_integer(kind) or pa.types.is_string(kind)):
                return name
        if self.time_type is not None and pa.types.is_boolean(self.time_type):
            return "viewed_at"
        return None


@st.composite
def events(draw) -> Events:
    layout = draw(st.sampled_from(["csv", "parquet", "delta"]))
    n = draw(st.integers(0, 20))
    if layout == "csv":
        ids = draw(st.sampled_from(["integers", "any"]))
        id_values = (
            INTEGER_IDS.map(lambda p: (None if p[0] is None else str(p[0]), p[1])) if ids == "integers" else TEXT_IDS
        )
        users = [draw(mostly_usable(id_values)) for _ in range(n)]
        assets = [draw(mostly_usable(id_values)) for _ in range(n)]
        times = [draw(mostly_usable(TEXT_TIMES)) for _ in range(n)]
        user_type = asset_type = time_type = None
    else:
        user_type = draw(st.sampled_from([pa.int64(), pa.string(), pa.int32()]))
        asset_type = draw(st.sampled_from([pa.int64(), pa.string(), pa.float64()]))
        time_type = draw(
            st.sampled_from([None, pa.timestamp("us", tz="UTC"), pa.int64(), pa.float64(), pa.string(), pa.bool_()])
        )
        users = [draw(mostly_usable(TEXT_IDS if pa.types.is_string(user_type) else INTEGER_IDS)) for _ in range(n)]
        if pa.types.is_int32(user_type):
            users = [(None if u is None else u % 1000, ok) for u, ok in users]
        assets = [draw(mostly_usable(TEXT_IDS if pa.types.is_string(asset_type) else INTEGER_IDS)) for _ in range(n)]
        if pa.types.is_floating(asset_type):
            assets = [(None if a is None else float(a), ok) for a, ok in assets]
        times = [
            draw(
                mostly_usable(
                    {
                        None: st.just((None, True)),
                        "timestamp[us, tz=UTC]": TIMESTAMPS,
                        "int64": SECONDS,
                        "double": FLOAT_SECONDS,
                        "string": TEXT_TIMES.filter(lambda p: p[0] != ""),  # only CSV reads "" as null
                        "bool": st.sampled_from([(True, True), (None, True)]),
                    }[None if time_type is None else str(time_type)]
                )
            )
            for _ in range(n)
        ]
    rows = [(u[0], a[0], t[0]) for u, a, t in zip(users, assets, times)]
    valid = [(u[1], a[1], t[1]) for u, a, t in zip(users, assets, times)]
    return Events(layout, user_type, asset_type, time_type, rows, valid, draw(st.integers(1, 3)))


def write_events(found: Events, root: Path) -> str:
    """The events in their layout under root; Parquet and Delta split into files, the last ones empty."""
    if found.layout == "csv":
        path = root / "events.csv"
        with path.open("w", encoding="utf-8", newline="") as text:
            writer = csv.writer(text)
            writer.writerow(["user_id", "asset_id", "viewed_at"])
            writer.writerows(found.rows)
        return str(path)
    fields = [("user_id", found.user_type), ("asset_id", found.asset_type)]
    if found.time_type is not None:
        fields.append(("viewed_at", found.time_type))
    schema = pa.schema(fields)
    columns = list(zip(*found.rows)) if found.rows else [[], [], []]
    table = pa.table({name: pa.array(columns[i], kind) for i, (name, kind) in enumerate(fields)}, schema=schema)
    size = -(-table.num_rows // found.files) if table.num_rows else 0
    parts = [table.slice(i * size, size) for i in range(found.files)]
    path = root / "events"
    if found.layout == "parquet":
        path.mkdir()
        for i, part in enumerate(parts):
            pq.write_table(part, path / f"part-{i}.parquet")
    else:
        for part in parts:
            write_deltalake(str(path), part, mode="append")
    return str(path)


def _key(value) -> str:
    """An id as the pipeline keys it: trimmed text (integers print as themselves)."""
    return str(value).strip(" ")


def expected_views(found: Events) -> tuple[set[tuple[str, str]], int]:
    """The distinct (user, asset) keys of the rows that should be valid, and the number of bad rows."""
    valid = [all(flags) for flags in found.valid]
    views = {(_key(row[0]), _key(row[1])) for row, ok in zip(found.rows, valid) if ok}
    return views, valid.count(False)


def brute_force_pairs(views: set[tuple[str, str]]) -> Counter:
    by_user = defaultdict(set)
    for user, asset in views:
        by_user[user].add(asset)
    return Counter(pair for assets in by_user.values() for pair in itertools.permutations(sorted(assets), 2))


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(found=events())
@example(
    found=Events(
        "parquet",
        pa.int64(),
        pa.string(),
        pa.timestamp("us", tz="UTC"),
        [(1, "a", FAR_FUTURE), (1, "b", None), (2, "a", FAR_PAST), (2, "b", 0), (2, "c", 0), (3, "c", 0), (3, "a", 0)],
        [(True, True, False), (True, True, True), (True, True, False)] + [(True, True, True)] * 4,
        2,
    )
)
def test_fuzzed_events_give_exact_pairs_and_a_season_or_a_clear_error(spark, found: Events) -> None:
    root = Path(tempfile.mkdtemp(prefix="film2vec-fuzz-"))
    try:
        check(spark, found, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check(spark, found: Events, root: Path) -> None:
    config = Config()
    config.data.events = write_events(found, root)
    config.data.out = str(root / "out")
    config.seasons.samples_per_view, config.seasons.negatives, config.seasons.sample_partitions = (
        SAMPLES_PER_VIEW,
        NEGATIVES,
        2,
    )
    config.seasons.seasons = 1  # a fixed count: every view walks (no slice held out to stop on)
    config.seasons.origin_distribution = "stratified"  # the same count from every origin, checked below
    views, bad_rows = expected_views(found)
    pairs = brute_force_pairs(views)
    assets = {asset for _, asset in views}
    if found.wrong_type:
        event("a column of the wrong type")
        with pytest.raises(InputError, match=rf"events at {re.escape(config.data.events)}: column {found.wrong_type}"):
            count_pairs(spark, config)
        return
    if not found.rows:
        event("no rows")
        with pytest.raises(InputError, match=rf"events at {re.escape(config.data.events)}: no rows"):
            count_pairs(spark, config)
        return
    if not views:
        event("every row rejected")
        with pytest.raises(
            InputError, match=rf"events at {re.escape(config.data.events)}: none of the {len(found.rows)}"
        ):
            count_pairs(spark, config)
        assert_rejects(config, bad_rows)
        return
    if not pairs:
        event("no pair")
        with pytest.raises(InputError, match="no pair of assets is left"):
            count_pairs(spark, config)
        assert_rejects(config, bad_rows)
        return
    summary = count_pairs(spark, config)
    assert summary["ingest"]["valid"] == len(found.rows) - bad_rows
    assert summary["ingest"]["rejected"] == bad_rows
    assert_rejects(config, bad_rows)
    written = DeltaTable(config.out("pairs")).to_pyarrow_table().to_pylist()
    assert Counter({(_key(r["asset_a"]), _key(r["asset_b"])): r["co_views"] for r in written}) == pairs
    assert len(written) == len(pairs)
    if len(assets) < 3:
        event("fewer than 3 assets")
        with pytest.raises(InputError, match="negatives need at least 3"):
            sample(spark, config, range(1))
        return
    event("a season written")
    sample(spark, config, range(1))
    check_season(config, pairs, assets)


def assert_rejects(config: Config, bad_rows: int) -> None:
    rejects = DeltaTable(config.out("rejects")).to_pyarrow_table().to_pylist()
    assert len(rejects) == bad_rows
    assert all(row["reason"] and row["source"] == config.data.events for row in rejects)


def check_season(config: Config, pairs: Counter, assets: set[str]) -> None:
    catalogue = (
        DeltaTable(config.out("assets")).to_pyarrow_table(columns=["asset_idx", "asset_id", "views"]).to_pylist()
    )
    id_of = {row["asset_idx"]: _key(row["asset_id"]) for row in catalogue}
    views_of = {_key(row["asset_id"]): row["views"] for row in catalogue}
    assert set(id_of.values()) == assets
    samples = DeltaTable(config.out("seasons")).to_pyarrow_table().to_pylist()
    origins = {a for a, _ in pairs}
    per_origin = max(1, round(SAMPLES_PER_VIEW * sum(views_of[a] for a in origins) / len(origins)))
    assert Counter(id_of[row["origin"]] for row in samples) == {a: per_origin for a in origins}
    for row in samples:
        assert row["season"] == 0
        assert (id_of[row["origin"]], id_of[row["target"]]) in pairs
    origin, target, draw = (
        np.array([row[name] for row in samples], dtype=np.int64) for name in ("origin", "target", "draw")
    )
    negatives = Negatives(NEGATIVES, len(catalogue)).of_draws(stream_key(config.seed, 0), origin, draw, target)
    assert negatives.shape == (len(samples), NEGATIVES) and set(negatives.ravel()) <= set(id_of)
    assert not (negatives == origin[:, None]).any() and not (negatives == target[:, None]).any()
