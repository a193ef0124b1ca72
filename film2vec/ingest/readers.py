"""View events in: readers for Delta, Parquet, CSV and the MovieLens layouts, validation and rejects.

Every reader produces the same raw frame (user_id, asset_id, viewed_at, line_error, line) plus optional
metadata (asset_id, title, genres, line_error, line). Validation then sorts each raw row into a clean view
or a reject with a reason, so nothing is dropped silently; a repeated (user, asset) is merged into its
earliest view. Ids keep the type they arrive in: integer columns stay 64-bit integers, string columns stay
strings, and CSV text is read as integers only when every id of that column is one.

Example::

    found = ingest(spark, "ml-latest-small")
    found.summary  # {"rows": 100836, "valid": 100836, "rejected": 0, "id_type": "int", ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from film2vec.conflicts import reading
from film2vec.errors import InputError
from film2vec.tables import is_remote, looks_like_table, name_parts, quoted

ML_100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ML_100K_ITEM_FIELDS = 5 + len(ML_100K_GENRES)  # id, title, release date, video release date, IMDb URL, flags
NO_GENRES = "(no genres listed)"
# movieId, then a title that is quoted (with "" for a quote) when it holds a comma, then the genres
ML_LATEST_MOVIE = r'^([^,]*),("(?:[^"]|"")*"|[^,"]*),([^,]*)$'
INTEGER_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
TIME_TYPES = (T.TimestampType, T.TimestampNTZType, T.DateType)
NUMBER_TYPES = (*INTEGER_TYPES, T.FloatType, T.DoubleType, T.DecimalType)
INTEGER_TEXT = r"^-?[0-9]+$"
# Text that auto-detection reads as an integer id: no sign games, no leading zeros ("007" stays a string)
# and at most 18 digits, so it always fits a 64-bit integer.
CANONICAL_INTEGER = r"^(0|-?[1-9][0-9]{0,17})$"
NUMBER_TEXT = r"^-?[0-9]+(\.[0-9]+)?$"
MAX_STRING_ID = 512
# Unix seconds of 1677-09-21 00:12:44 and 2262-04-11 23:47:16 UTC: the times a nanosecond timestamp holds, so
# that every reader of the tables (pandas, delta-rs, Spark) reads every view time
EARLIEST_SECONDS, LATEST_SECONDS = -9_223_372_036, 9_223_372_036
TIME_RANGE = "1677-09-22 to 2262-04-11"
MILLISECONDS = (1e11, 1e14)  # Unix milliseconds of 1973 to 5138: a plausible time read as seconds is not one
ID_COLUMNS = ("user_id", "asset_id")

MOVIELENS_LAYOUTS = ("ml-100k", "ml-1m", "ml-latest")


def detect_layout(path: str, what: str = "events") -> str:
    """table, delta, parquet, csv, ml-100k, ml-1m or ml-latest, from what the path or name holds."""
    if looks_like_table(path):
        return "table"
    if is_remote(path):
        return "csv" if path.endswith((".csv", ".csv.gz")) else "parquet" if path.endswith(".parquet") else "delta"
    local = Path(path)
    if not local.exists():
        raise InputError(f"{what} at {path}: no such file or folder")
    if local.is_file():
        if path.endswith((".csv", ".csv.gz")):
            return "csv"
        if path.endswith(".parquet"):
            return "parquet"
        raise InputError(f"{what} at {path}: unknown file type; expected a .csv, .csv.gz or .parquet file or a folder")
    if (local / "_delta_log").is_dir():
        return "delta"
    for marker, layout in zip(("u.data", "ratings.dat", "ratings.csv"), MOVIELENS_LAYOUTS):
        if (local / marker).is_file():
            return layout
    names = sorted(p.name for p in local.iterdir() if not p.name.startswith((".", "_")))
    if not names:
        raise InputError(f"{what} at {path}: the folder is empty (no data files)")
    if all(n.endswith(".parquet") for n in names):
        return "parquet"
    if all(n.endswith((".csv", ".csv.gz")) for n in names):
        return "csv"
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    raise InputError(
        f"{what} at {path}: cannot tell the format of this folder (it holds {shown}); expected a Delta table "
        "(_delta_log/), only .parquet or only .csv files, or a MovieLens folder (u.data, ratings.dat or ratings.csv)"
    )


def load(spark: SparkSession, path: str, layout: str, what: str) -> DataFrame:
    """A metastore or Delta table, Parquet or CSV (header, all text) as Spark reads it; an unreadable or empty
    one stops with what and where."""
    if layout == "table":
        spark_name = quoted(name_parts(path, what))
        if not spark.catalog.tableExists(spark_name):
            raise InputError(
                f"{what} {path}: no such table in the metastore, and no file or folder of that name here; give a "
                "path, or a table the session's catalog holds (catalog.schema.table or schema.table)"
            )
    with reading(f"{what} at {path}"):
        if layout == "table":
            frame = spark.read.table(spark_name)
        elif layout == "delta":
            frame = spark.read.format("delta").load(path)
        elif layout == "parquet":
            frame = spark.read.parquet(path)
        else:
            # a quoted field may span lines (a title with a line break); such a file is read whole, not split
            frame = spark.read.csv(path, header=True, quote='"', escape='"', multiLine=True)
    if not frame.columns:
        raise InputError(f"{what} at {path}: the file is empty (no header, no rows)")
    return frame


def require_columns(frame: DataFrame, columns: tuple[str, ...], path: str, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} at {path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}")


def read_input(spark: SparkSession, source: str, what: str, columns: tuple[str, ...]) -> DataFrame:
    """A table a user names (metastore name, Delta folder, Parquet, or CSV with a header) holding `columns`;
    errors name the source and `what`."""
    layout = detect_layout(source, what)
    if layout in MOVIELENS_LAYOUTS:
        raise InputError(
            f"{what} at {source}: a MovieLens folder, which only events and metadata are read from; give a "
            f"table, a Delta folder, Parquet or a CSV file with column(s) {', '.join(columns)}"
        )
    frame = load(spark, source, layout, what)
    require_columns(frame, columns, source, what)
    return frame


@dataclass(frozen=True)
class RawInput:
    """What a reader found: raw events, optional raw metadata, and how text ids are to be read.

    id_type applies to ids that arrive as text: "int", "string" or "auto" (decided from the values).
    Integer columns of Delta and Parquet are always integers, and their string columns always strings.
    """

    events: DataFrame
    metadata: DataFrame | None
    layout: str
    path: str
    id_type: str
    metadata_path: str | None = None


@dataclass(frozen=True)
class Ingested:
    """Clean views (one per distinct user and asset), the asset index, and the rejected rows.

    rejects holds the rejected event rows (source: the events path) and the unusable metadata rows
    (source: the metadata path); summary counts them apart: rows = valid + rejected for the events, and
    metadata_rows and metadata_rejected for the metadata.
    """

    views: DataFrame
    assets: DataFrame
    rejects: DataFrame
    summary: dict
    metadata: DataFrame | None = None  # usable metadata rows (asset_id, title, genres), viewed or not
    cached: tuple[DataFrame, ...] = ()  # the validated rows every frame above reads, held in Spark's cache

    def release(self) -> None:
        """Drop the validated rows from Spark's cache once the frames are written or collected."""
        for frame in self.cached:
            frame.unpersist()


@dataclass(frozen=True)
class Columns:
    """The input's column names for film2vec's own (--user-col, --asset-col, --time-col; the metadata's)."""

    user_id: str = "user_id"
    asset_id: str = "asset_id"
    viewed_at: str = "viewed_at"
    metadata_asset_id: str = "asset_id"
    title: str = "title"
    genres: str = "genres"

    def events(self) -> dict[str, str]:
        return {"user_id": self.user_id, "asset_id": self.asset_id, "viewed_at": self.viewed_at}

    def metadata(self) -> dict[str, str]:
        return {"asset_id": self.metadata_asset_id, "title": self.title, "genres": self.genres}


@dataclass(frozen=True)
class ReadRules:
    """How text values are read: the words that mean a missing value, and whether views of assets the metadata
    lacks are rejected (strict) or kept without labels."""

    null_tokens: tuple[str, ...] = ("NULL", "null", "\\N", "NaN", "nan", "None")
    strict_metadata: bool = False


@dataclass(frozen=True)
class Source:
    """Events to ingest, their metadata, and how to read them. film2vec's own tables (the synthetic catalogue,
    evaluate's split) are read as they are: film2vec's column names, typed ids."""

    events: str
    metadata: str | None = None
    id_type: str = "auto"
    columns: Columns = Columns()
    rules: ReadRules = ReadRules()


def source_of(data) -> Source:
    """The user's input as a DataConfig names it, read by its settings (--id-type, the column names,
    --null-tokens, --strict-metadata; the metadata's asset id defaults to the events' one)."""
    columns = Columns(
        data.user_col,
        data.asset_col,
        data.time_col,
        data.metadata_asset_col or data.asset_col,
        data.title_col,
        data.genres_col,
    )
    tokens = tuple(token.strip() for token in data.null_tokens.split(",") if token.strip())
    return Source(data.events, data.metadata, data.id_type, columns, ReadRules(tokens, data.strict_metadata))


def _renamed(frame: DataFrame, names: dict[str, str]) -> DataFrame:
    """The frame with each given column under film2vec's name (a column already of that name is replaced)."""
    for own, given in names.items():
        if given == own or given not in frame.columns:
            continue
        frame = frame.drop(own).withColumnRenamed(given, own)
    return frame


def _header(path: Path, what: str) -> str:
    """The first line of a local text file, without its line ending; an empty file stops here."""
    with path.open(encoding="utf-8", errors="replace", newline="") as text:
        header = text.readline().rstrip("\r\n")
    if not header.strip():
        raise InputError(f"{what} at {path}: the file is empty (no header)")
    return header


def _read_lines(spark: SparkSession, path: str, encoding: str = "UTF-8") -> DataFrame:
    """Whole non-blank lines of a text file (no header, no quoting), so short lines can be rejected with reason."""
    if encoding == "UTF-8":
        lines = spark.read.text(path)
    else:  # the text reader knows only UTF-8; the CSV reader with an unused separator reads other encodings
        lines = spark.read.csv(path, schema="line string", sep="\u0001", quote="", encoding=encoding)
    line = F.rtrim(F.col(lines.columns[0]))
    return lines.select(line.alias("line")).where(F.length("line") > 0)


def _unparseable(expected: int, found: Column, what: str = "line") -> Column:
    return F.concat(F.lit(f"unparseable {what}: expected {expected} fields, found "), found.cast("string"))


def _split_events(lines: DataFrame, separator: str, fields: int, user: int, asset: int, time: int | None) -> DataFrame:
    """Raw events from delimited lines; a line with fewer than `fields` fields is kept as unparseable."""
    parts = F.split("line", separator)
    enough = F.size(parts) >= fields
    viewed_at = F.when(enough, parts[time]) if time is not None else F.lit(None).cast("string")
    return lines.select(
        F.when(enough, parts[user]).alias("user_id"),
        F.when(enough, parts[asset]).alias("asset_id"),
        viewed_at.alias("viewed_at"),
        F.when(~enough, _unparseable(fields, F.size(parts))).alias("line_error"),
        "line",
    )


def _genre_list(text: Column, separator: str = r"\|") -> Column:
    """Genres from separated text; blank text and "(no genres listed)" give an empty list."""
    genres = F.split(F.coalesce(F.trim(text), F.lit("")), separator)
    return F.filter(genres, lambda g: (F.length(g) > 0) & (g != NO_GENRES))


def _ml_latest(spark: SparkSession, root: Path) -> tuple[DataFrame, DataFrame | None]:
    """ratings.csv and movies.csv, read as lines: short lines become rejects instead of null fields."""
    ratings = root / "ratings.csv"
    header = _header(ratings, "events")
    names = [n.strip().lstrip("\ufeff") for n in header.split(",")]
    missing = [n for n in ("userId", "movieId") if n not in names]
    if missing:
        raise InputError(f"events at {ratings}: missing column(s) {', '.join(missing)}; found {header}")
    time = names.index("timestamp") if "timestamp" in names else None
    lines = _read_lines(spark, str(ratings)).where(F.col("line") != header.rstrip())
    events = _split_events(lines, ",", len(names), names.index("userId"), names.index("movieId"), time)
    movies = root / "movies.csv"
    if not movies.is_file():
        return events, None
    header = _header(movies, "metadata")
    if [n.strip().lstrip("\ufeff") for n in header.split(",")] != ["movieId", "title", "genres"]:
        raise InputError(f"metadata at {movies}: expected the header movieId,title,genres; found {header}")
    lines = _read_lines(spark, str(movies)).where(F.col("line") != header.rstrip())
    field = [F.regexp_extract("line", ML_LATEST_MOVIE, i) for i in (1, 2, 3)]
    title = F.regexp_replace(F.regexp_replace(field[1], r'^"(.*)"$', "$1"), '""', '"')
    ok = F.col("line").rlike(ML_LATEST_MOVIE)
    metadata = lines.select(
        F.when(ok, field[0]).alias("asset_id"),
        F.when(ok, title).alias("title"),
        F.when(ok, _genre_list(field[2])).alias("genres"),
        F.when(~ok, F.lit("unparseable metadata line: expected movieId,title,genres")).alias("line_error"),
        "line",
    )
    return events, metadata


def _ml_delimited(lines: DataFrame, separator: str, fields: int, title: int, genres: Column) -> DataFrame:
    """Raw metadata from delimited lines (id first); a line with fewer than `fields` fields is unparseable."""
    parts = F.split("line", separator)
    enough = F.size(parts) >= fields
    return lines.select(
        F.when(enough, parts[0]).alias("asset_id"),
        F.when(enough, parts[title]).alias("title"),
        F.when(enough, genres).alias("genres"),
        F.when(~enough, _unparseable(fields, F.size(parts), "metadata line")).alias("line_error"),
        "line",
    )


def read_movielens(spark: SparkSession, folder: str, layout: str) -> RawInput:
    """Ratings (every rating counts as a view) and movies of a MovieLens folder; ids are integers."""
    root = Path(folder)
    if layout == "ml-latest":
        events, metadata = _ml_latest(spark, root)
        movies = root / "movies.csv"
    elif layout == "ml-1m":
        events = _split_events(_read_lines(spark, str(root / "ratings.dat")), "::", 4, 0, 1, 3)
        movies, metadata = root / "movies.dat", None
        if movies.is_file():
            parts = F.split("line", "::")
            metadata = _ml_delimited(_read_lines(spark, str(movies), "ISO-8859-1"), "::", 3, 1, _genre_list(parts[2]))
    else:
        events = _split_events(_read_lines(spark, str(root / "u.data")), "\t", 4, 0, 1, 3)
        movies, metadata = root / "u.item", None
        if movies.is_file():
            parts = F.split("line", r"\|")
            flags = [F.when(F.trim(parts[5 + i]) == "1", F.lit(name)) for i, name in enumerate(ML_100K_GENRES)]
            metadata = _ml_delimited(
                _read_lines(spark, str(movies), "ISO-8859-1"),
                r"\|",
                ML_100K_ITEM_FIELDS,
                1,
                F.filter(F.array(*flags), F.isnotnull),
            )
    return RawInput(events, metadata, layout, folder, "int", str(movies) if metadata is not None else None)


def _check_type(frame: DataFrame, column: str, allowed: tuple, expected: str, path: str, what: str) -> None:
    kind = frame.schema[column].dataType
    if not isinstance(kind, allowed):
        raise InputError(f"{what} at {path}: column {column} has type {kind.simpleString()}; expected {expected}")


def read_table(
    spark: SparkSession, path: str, layout: str, id_type: str = "auto", columns: Columns = Columns()
) -> RawInput:
    """Events from a metastore or Delta table, Parquet or a CSV file with columns user_id, asset_id[, viewed_at]
    (or the names `columns` gives them)."""
    frame = load(spark, path, layout, "events")
    require_columns(frame, tuple(columns.events().values())[:2], path, "events")
    frame = _renamed(frame, columns.events())
    for column in ID_COLUMNS:
        _check_type(frame, column, (*INTEGER_TYPES, T.StringType), "integers or strings", path, "events")
    if "viewed_at" in frame.columns:
        _check_type(
            frame,
            "viewed_at",
            (*TIME_TYPES, *NUMBER_TYPES, T.StringType),
            "a timestamp, a date, Unix seconds or ISO text",
            path,
            "events",
        )
    viewed_at = F.col("viewed_at") if "viewed_at" in frame.columns else F.lit(None).cast("timestamp")
    columns = [c for c in frame.columns if c in (*ID_COLUMNS, "viewed_at")]
    events = frame.select(
        *ID_COLUMNS,
        viewed_at.alias("viewed_at"),
        F.lit(None).cast("string").alias("line_error"),
        F.to_json(F.struct(*columns), {"ignoreNullFields": "false"}).alias("line"),
    )
    # Typed tables carry their own id types; only CSV text is read as the caller asks.
    return RawInput(events, None, layout, path, id_type if layout == "csv" else "string")


def _raw_metadata(spark: SparkSession, path: str, columns: Columns = Columns()) -> tuple[DataFrame, str]:
    """Raw metadata (asset_id, title, genres, line_error, line) from any supported source, and its file."""
    layout = detect_layout(path, "metadata")
    if layout.startswith("ml-"):
        with reading(f"metadata at {path}"):
            found = read_movielens(spark, path, layout)
        if found.metadata is None:
            raise InputError(f"metadata at {path}: this MovieLens folder has no movies file")
        return found.metadata, found.metadata_path
    frame = load(spark, path, layout, "metadata")
    require_columns(frame, (columns.metadata_asset_id,), path, "metadata")
    frame = _renamed(frame, columns.metadata())
    _check_type(frame, "asset_id", (*INTEGER_TYPES, T.StringType), "integers or strings", path, "metadata")
    title = F.col("title").cast("string") if "title" in frame.columns else F.lit(None).cast("string")
    genres = F.lit(None).cast("array<string>")
    if "genres" in frame.columns:
        _check_type(
            frame, "genres", (T.ArrayType, T.StringType), "a list of strings or '|'-separated text", path, "metadata"
        )
        kind = frame.schema["genres"].dataType
        genres = (
            F.col("genres").cast("array<string>") if isinstance(kind, T.ArrayType) else _genre_list(F.col("genres"))
        )
    return frame.select(
        "asset_id",
        title.alias("title"),
        genres.alias("genres"),
        F.lit(None).cast("string").alias("line_error"),
        F.to_json(F.struct(*frame.columns), {"ignoreNullFields": "false"}).alias("line"),
    ), path


def read_raw(spark: SparkSession, path: str, id_type: str = "auto", columns: Columns = Columns()) -> RawInput:
    """Any supported events source, its layout detected."""
    layout = detect_layout(path)
    if layout.startswith("ml-"):
        with reading(f"events at {path}"):
            return read_movielens(spark, path, layout)
    return read_table(spark, path, layout, id_type, columns)


def _id_types(raw: RawInput, rules: ReadRules = ReadRules()) -> dict[str, str]:
    """Per id column, int or string: integer columns are ints, string columns as raw.id_type says, where
    auto makes a column int when every id in it that is not missing is an integral number ("12", "12.0")
    (one pass over the events)."""
    types = {}
    for column in ID_COLUMNS:
        if isinstance(raw.events.schema[column].dataType, INTEGER_TYPES):
            types[column] = "int"
        elif raw.id_type in ("int", "string"):
            types[column] = raw.id_type
    auto = [c for c in ID_COLUMNS if c not in types]
    if auto:

        def not_integer(column: str) -> Column:
            text = F.trim(column)
            present = text.isNotNull() & (text != "") & ~text.isin(*rules.null_tokens)
            return F.sum((present & ~_integral(text).rlike(CANONICAL_INTEGER)).cast("int"))

        counts = raw.events.select(*[not_integer(c).alias(c) for c in auto]).first()
        types.update({c: "string" if (counts[c] or 0) > 0 else "int" for c in auto})
    return types


def described(id_types: dict[str, str]) -> str:
    """The summary's id_type: "int" or "string" when both id columns agree, else each column's."""
    types = set(id_types.values())
    return types.pop() if len(types) == 1 else ", ".join(f"{c} {t}" for c, t in id_types.items())


def _integral(text: Column) -> Column:
    """Text of an integral number without its zero fraction ("12.0" → "12"); other text as it is."""
    return F.regexp_replace(text, r"^(-?[0-9]+)\.0+$", "$1")


def _clean_id(column: str, id_type: str, what: str = "", rules: ReadRules = ReadRules()) -> tuple[Column, Column]:
    """(parsed id, reason or null) for one id column: a long for "int" ("12" and "12.0" alike), trimmed text
    for "string"; a blank value or a null token is missing."""
    raw = F.col(column)
    text = F.trim(raw.cast("string"))
    missing = raw.isNull() | (text == "") | text.isin(*rules.null_tokens)
    name = f"{what}{column}"
    shown = F.substring(text, 1, 40)
    if id_type == "int":
        number = _integral(text)
        reason = F.when(missing, F.lit(f"{name} is null")).when(
            ~number.rlike(INTEGER_TEXT) | number.try_cast("long").isNull(),
            F.concat(F.lit(f"malformed {name}: not a 64-bit integer: "), shown),
        )
        return F.when(reason.isNull(), number.try_cast("long")), reason
    reason = (
        F.when(missing, F.lit(f"{name} is null"))
        .when(F.length(text) > MAX_STRING_ID, F.lit(f"malformed {name}: longer than {MAX_STRING_ID} characters"))
        .when(text.rlike(r"[\x00-\x1f\x7f]"), F.concat(F.lit(f"malformed {name}: control characters in "), shown))
    )
    return F.when(reason.isNull(), text), reason


def _parse_time(events: DataFrame, rules: ReadRules = ReadRules()) -> tuple[Column, Column]:
    """(viewed_at as timestamp, reason or null): timestamps, dates, Unix seconds or ISO text between 1677 and
    2262 (TIME_RANGE); a null token is a missing time, and a number that reads as milliseconds says so."""
    kind = events.schema["viewed_at"].dataType
    column = F.col("viewed_at")
    number = stamp = None  # the time as Unix seconds given as a number, or as a timestamp
    if isinstance(kind, TIME_TYPES):
        stamp = column.cast("timestamp")
    elif isinstance(kind, (*NUMBER_TYPES, T.NullType)):
        number = column.cast("double")
    else:
        column = F.when(~F.trim(column).isin(*rules.null_tokens), column)
        text = F.trim(column)
        number = F.when(text.rlike(NUMBER_TEXT), text.try_cast("double"))
        stamp = F.when(number.isNull(), F.try_to_timestamp(text))
    if stamp is None:
        seconds, value = number, F.timestamp_seconds(number)
    elif number is None:
        seconds, value = F.unix_seconds(stamp), stamp
    else:
        seconds = F.coalesce(number, F.unix_seconds(stamp))
        value = F.coalesce(stamp, F.timestamp_seconds(number))
    within = seconds.between(EARLIEST_SECONDS, LATEST_SECONDS)
    shown = F.substring(column.cast("string"), 1, 40)
    outside = F.concat(F.lit(f"viewed_at outside {TIME_RANGE}: "), shown)
    if number is not None:
        looks_like = F.concat(F.lit("viewed_at in milliseconds: Unix seconds expected (divide by 1000): "), shown)
        outside = F.when(number.between(*MILLISECONDS), looks_like).otherwise(outside)
    reason = F.when(column.isNotNull() & seconds.isNull(), F.concat(F.lit("malformed viewed_at: not a time: "), shown))
    return F.when(within, value), reason.when(column.isNotNull() & ~within, outside)


def typed_metadata(metadata: DataFrame, id_type: str, rules: ReadRules = ReadRules()) -> DataFrame:
    """Raw metadata with asset ids of the events' type and a reject reason (null for a usable row), cached."""
    asset, reason = _clean_id("asset_id", id_type, "metadata ", rules)
    checked = metadata.select(
        asset.alias("asset_id"), F.coalesce("line_error", reason).alias("reason"), "title", "genres", "line"
    )
    return checked.persist()


def _tally(
    checked: DataFrame, checked_metadata: DataFrame | None
) -> tuple[dict[str, dict[str | None, tuple[int, str]]], tuple[int, int]]:
    """{"events" or "metadata": {reason kind (None for valid rows): (rows, an example reason)}}, and the
    valid views whose asset the metadata lacks with their distinct assets, in one job.

    The kind is the reason up to its first colon, so "malformed user_id: not a 64-bit integer: x" counts
    as "malformed user_id".
    """
    reasons = checked.select(F.lit("events").alias("table"), "reason", "unlabelled", "asset_id")
    if checked_metadata is not None:
        reasons = reasons.unionByName(
            checked_metadata.select(
                F.lit("metadata").alias("table"), "reason", F.lit(False).alias("unlabelled"), "asset_id"
            )
        )
    kind = F.regexp_extract("reason", r"^[^:]*", 0).alias("kind")
    rows = reasons.groupBy("table", kind).agg(
        F.count("*").alias("rows"),
        F.first("reason").alias("example"),
        F.count(F.when(F.col("unlabelled"), 1)).alias("unlabelled_views"),
        F.count_distinct(F.when(F.col("unlabelled"), F.col("asset_id"))).alias("unlabelled_assets"),
    )
    tally, unlabelled = {"events": {}, "metadata": {}}, (0, 0)
    for row in rows.collect():
        tally[row["table"]][row["kind"]] = (row["rows"], row["example"])
        if row["table"] == "events" and row["kind"] is None:
            unlabelled = (row["unlabelled_views"], row["unlabelled_assets"])
    return tally, unlabelled


def validate(
    raw: RawInput, metadata: DataFrame | None, id_types: dict[str, str], rules: ReadRules = ReadRules()
) -> DataFrame:
    """Every raw row with its parsed ids and time, a reject reason (null for a valid view) and whether the
    metadata lacks its asset (rejected only under strict_metadata), cached."""
    user, user_reason = _clean_id("user_id", id_types["user_id"], rules=rules)
    asset, asset_reason = _clean_id("asset_id", id_types["asset_id"], rules=rules)
    viewed_at, time_reason = _parse_time(raw.events, rules)
    checked = raw.events.select(
        user.alias("user_id"),
        asset.alias("asset_id"),
        viewed_at.alias("viewed_at"),
        F.coalesce("line_error", user_reason, asset_reason, time_reason).alias("reason"),
        "line",
    )
    unlabelled = F.lit(False)
    if metadata is not None:
        known = metadata.select(F.col("asset_id").alias("known_asset"), F.lit(True).alias("in_metadata"))
        checked = checked.join(known, checked.asset_id == known.known_asset, "left")
        unlabelled = F.col("in_metadata").isNull()
        if rules.strict_metadata:
            checked = checked.withColumn(
                "reason", F.coalesce("reason", F.when(unlabelled, F.lit("asset_id not in metadata")))
            )
    return checked.select(
        "user_id", "asset_id", "viewed_at", "line", "reason", unlabelled.alias("unlabelled")
    ).persist()


def index_assets(views: DataFrame, metadata: DataFrame | None) -> DataFrame:
    """Dense asset indices 0..n-1 in asset id order, with per-asset view counts and metadata."""
    counts = views.groupBy("asset_id").agg(F.count("*").alias("views"))
    indexed = counts.withColumn("asset_idx", (F.row_number().over(Window.orderBy("asset_id")) - 1).cast("int"))
    if metadata is None:
        return indexed.select(
            "asset_idx",
            "asset_id",
            "views",
            F.lit(None).cast("string").alias("title"),
            F.lit(None).cast("array<string>").alias("genres"),
        )
    return indexed.join(metadata, "asset_id", "left").select("asset_idx", "asset_id", "views", "title", "genres")


def _check_not_empty(tally: dict, events_path: str, metadata_path: str | None, asset_id_type: str) -> None:
    """Stop on events without rows, and on metadata without rows or without a single usable row."""
    if not tally["events"]:
        raise InputError(f"events at {events_path}: no rows (the input is empty)")
    if metadata_path is None:
        return
    rows = sum(rows for rows, _ in tally["metadata"].values())
    if rows == 0:
        raise InputError(f"metadata at {metadata_path}: no rows (the input is empty)")
    if None not in tally["metadata"]:
        example = next(iter(tally["metadata"].values()))[1]
        raise InputError(
            f"metadata at {metadata_path}: none of the {rows} rows is usable (e.g. {example}); "
            f"the events' asset ids are {'integers' if asset_id_type == 'int' else 'strings'}"
        )


def ingest(
    spark: SparkSession,
    events_path: str,
    metadata_path: str | None = None,
    id_type: str = "auto",
    columns: Columns = Columns(),
    rules: ReadRules = ReadRules(),
) -> Ingested:
    """Read and validate events (and metadata): clean views, asset index, rejects, and a summary of counts.

    Metadata comes from metadata_path, else from the MovieLens folder's movies file when there is one.
    Raises InputError for a missing path, a wrong schema, an unreadable file, empty events or metadata, or
    metadata without a usable row; events whose rows are all rejected come back with valid = 0 (the caller
    decides what to do).
    """
    raw = read_raw(spark, events_path, id_type, columns)
    metadata, metadata_source = raw.metadata, raw.metadata_path
    if metadata_path:
        metadata, metadata_source = _raw_metadata(spark, metadata_path, columns)
    where = f"events at {events_path}" + (f" with metadata at {metadata_source}" if metadata is not None else "")
    with reading(where):
        id_types = _id_types(raw, rules)
        checked_metadata = usable = None
        if metadata is not None:
            checked_metadata = typed_metadata(metadata, id_types["asset_id"], rules)
            usable = checked_metadata.where(F.col("reason").isNull()).select("asset_id", "title", "genres")
            usable = usable.dropDuplicates(["asset_id"])
        checked = validate(raw, usable, id_types, rules)
        tally, without_metadata = _tally(checked, checked_metadata)
    try:
        _check_not_empty(tally, events_path, metadata_source, id_types["asset_id"])
    except InputError:
        for frame in (checked, checked_metadata):
            if frame is not None:
                frame.unpersist()
        raise
    reasons = {kind: rows for kind, (rows, _) in tally["events"].items() if kind is not None}
    valid = tally["events"].get(None, (0, None))[0]
    rejects = checked.where(F.col("reason").isNotNull()).select("reason", "line", F.lit(raw.path).alias("source"))
    if checked_metadata is not None:
        rejects = rejects.unionByName(
            checked_metadata.where(F.col("reason").isNotNull()).select(
                "reason", "line", F.lit(metadata_source).alias("source")
            )
        )
    views = checked.where(F.col("reason").isNull()).groupBy("user_id", "asset_id")
    views = views.agg(F.min("viewed_at").alias("viewed_at"))
    summary = {
        "source": events_path,
        "layout": raw.layout,
        "id_type": described(id_types),
        "rows": valid + sum(reasons.values()),
        "valid": valid,
        "rejected": sum(reasons.values()),
        "rejected_by_reason": reasons,
        "metadata": metadata_source,
        "metadata_rows": sum(rows for rows, _ in tally["metadata"].values()),
        "metadata_rejected": sum(rows for kind, (rows, _) in tally["metadata"].items() if kind is not None),
    }
    if metadata is not None:  # kept, without title or genres (strict_metadata rejects them instead)
        summary["views_without_metadata"], summary["assets_without_metadata"] = without_metadata
    cached = (checked,) if checked_metadata is None else (checked, checked_metadata)
    return Ingested(views, index_assets(views, usable), rejects, summary, usable, cached)


def ingest_source(spark: SparkSession, source: Source) -> Ingested:
    """`ingest` of a Source."""
    return ingest(spark, source.events, source.metadata, source.id_type, source.columns, source.rules)
