"""Reading a time series from a CSV file: the target and covariate columns, checked timestamps.

Every problem a user can fix is a :class:`UserError` of one line: a missing column (with
the columns found), a value that is not a number (with its row), timestamps out of order
(``--sort``), gaps and empty cells (``--fill forward|linear|zero``).
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError

FILLS = ("error", "forward", "linear", "zero")
MISSING = {"", "na", "nan", "null", "none", "n/a", "-"}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d",
                "%Y-%m", "%Y/%m/%d", "%Y/%m", "%d.%m.%Y", "%m/%d/%Y", "%Y")
TIME_NAMES = ("date", "time", "timestamp", "datetime", "month", "ds", "day", "year", "week")


@dataclass
class Frequency:
    """The step between readings: a number of calendar months, or of seconds."""

    unit: str  # "months" or "seconds"
    step: int

    def advance(self, moment: datetime, steps: int) -> datetime:
        if self.unit == "seconds":
            return moment + timedelta(seconds=self.step * steps)
        months = moment.year * 12 + moment.month - 1 + self.step * steps
        return moment.replace(year=months // 12, month=months % 12 + 1)

    def steps_between(self, earlier: datetime, later: datetime) -> float:
        if self.unit == "seconds":
            return (later - earlier).total_seconds() / self.step
        months = (later.year - earlier.year) * 12 + later.month - earlier.month
        return months / self.step

    def season(self) -> int:
        """The usual season length in steps: 12 months, 24 hours, 7 days; 1 when none."""
        if self.unit == "months":
            return {1: 12, 3: 4}.get(self.step, 1)
        return {60: 60, 900: 96, 1800: 48, 3600: 24, 86400: 7, 604800: 52}.get(self.step, 1)

    def describe(self) -> str:
        if self.unit == "months":
            return {1: "monthly", 3: "quarterly", 12: "yearly"}.get(self.step,
                                                                   f"every {self.step} months")
        names = {60: "minutely", 3600: "hourly", 86400: "daily", 604800: "weekly"}
        return names.get(self.step, f"every {self.step} seconds")


@dataclass
class Series:
    """Columns of one series as floats: ``values[:, 0]`` is the target, covariates after it."""

    path: str
    columns: list[str]  # target first
    values: np.ndarray  # (T, C) float64
    times: list[datetime] | None = None
    time_column: str | None = None
    time_format: str | None = None
    frequency: Frequency | None = None
    filled: int = 0  # readings that --fill supplied (gaps and empty cells)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def target(self) -> np.ndarray:
        return self.values[:, 0]

    def content_hash(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.values).tobytes()).hexdigest()[:16]

    def format_time(self, moment: datetime) -> str:
        return moment.strftime(self.time_format) if self.time_format else moment.isoformat()

    def future_times(self, steps: int) -> list[datetime] | None:
        if not self.times or self.frequency is None:
            return None
        return [self.frequency.advance(self.times[-1], k) for k in range(1, steps + 1)]


def parse_time(text: str) -> tuple[datetime, str | None] | None:
    text = text.strip()
    if text.isdigit() and len(text) != 4:  # a row number, not a year
        return None
    for pattern in TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern), pattern
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text), None
    except ValueError:
        return None


def _read_rows(path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist or is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path} is not UTF-8 text ({error.reason} at byte "
                        f"{error.start})") from None
    lines = text.splitlines()
    if not lines:
        raise UserError(f"{what} {path} is empty; expected a CSV with a header line")
    delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in lines[0] else (
        ";" if lines[0].count(";") > lines[0].count(",") else ",")
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = [name.strip() for name in rows[0]]
    return header, rows[1:]


def read_header(path: str | Path, what: str = "DATA") -> list[str]:
    """The column names of the CSV ``path`` (its first line), with read_series' errors."""
    return _read_rows(Path(path), what)[0]


def check_column(header: list[str], name: str, flag: str, path: str | Path) -> None:
    """A one-line error naming the columns found when ``name`` (given by ``flag``) is not
    one of ``header`` (case-insensitive, as read_series matches it)."""
    _column_index(header, name, flag, Path(path))


def _column_index(header: list[str], name: str, flag: str, path: Path) -> int:
    if name in header:
        return header.index(name)
    folded = [column.lower() for column in header]
    if name.lower() in folded:
        return folded.index(name.lower())
    raise UserError(f"{path}: no column {name!r} ({flag}); the columns found are "
                    f"{', '.join(repr(c) for c in header)}")


def _guess_time_column(header: list[str], rows: list[list[str]], taken: set[int]) -> int | None:
    candidates = [i for i, name in enumerate(header) if i not in taken and
                  name.lower() in TIME_NAMES]
    candidates += [0] if 0 not in taken else []
    for index in candidates:
        sample = [row[index] for row in rows[:20] if index < len(row)]
        if sample and all(parse_time(value) for value in sample):
            return index
    return None


def _number(text: str, column: str, row_number: int, path: Path) -> float:
    if text.strip().lower() in MISSING:
        return math.nan
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise UserError(f"{path}: row {row_number}, column {column!r}: {text.strip()!r} is not "
                        f"a number") from None
    if math.isinf(value):
        raise UserError(f"{path}: row {row_number}, column {column!r}: {text.strip()!r} is "
                        f"infinite")
    return value


def infer_frequency(times: list[datetime]) -> Frequency:
    if all(t.day == 1 and t.hour == 0 and t.minute == 0 and t.second == 0 for t in times):
        months = [(b.year - a.year) * 12 + b.month - a.month for a, b in zip(times, times[1:])]
        positive = [m for m in months if m > 0]
        if positive:
            return Frequency("months", min(Counter(positive).most_common(1)[0][0],
                                           min(positive)))
    seconds = [round((b - a).total_seconds()) for a, b in zip(times, times[1:])]
    positive = [s for s in seconds if s > 0]
    if not positive:
        raise UserError("the timestamps never advance; expected one reading per time step")
    return Frequency("seconds", min(positive))


def read_series(path: str | Path, target: str, *, time_col: str | None = None,
                covariates: list[str] | tuple[str, ...] = (), fill: str = "error",
                sort: bool = False, what: str = "DATA") -> Series:
    """Read ``target`` (and ``covariates``) from a CSV file as a :class:`Series`.

    ``time_col`` names the timestamp column; without it a first column (or one named like
    ``date``/``month``) whose values parse as dates is used, and a file without one is read
    as equally spaced readings. Rows must be in time order (``sort=True`` sorts them), one
    step apart; gaps and empty cells are errors unless ``fill`` is forward, linear or zero.
    """
    if fill not in FILLS:
        raise UserError(f"--fill must be one of {', '.join(FILLS)}, got {fill!r}")
    path = Path(path)
    header, rows = _read_rows(path, what)
    columns = [target, *covariates]
    flags = ["--target"] + ["--covariates"] * len(covariates)
    indices = [_column_index(header, name, flag, path) for name, flag in zip(columns, flags)]
    columns = [header[i] for i in indices]
    if len(set(indices)) != len(indices):
        raise UserError(f"{path}: a column is named twice in --target and --covariates")
    if time_col:
        time_index = _column_index(header, time_col, "--time-col", path)
        if time_index in indices:
            raise UserError(f"{path}: --time-col {time_col!r} is also the target or a covariate")
    else:
        time_index = _guess_time_column(header, rows, set(indices))
    records = []  # (row number, time or None, values)
    for offset, row in enumerate(rows):
        row_number = offset + 2  # the header is line 1
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise UserError(f"{path}: row {row_number} has {len(row)} field(s); the header "
                            f"has {len(header)}")
        moment = None
        if time_index is not None:
            parsed = parse_time(row[time_index])
            if parsed is None:
                raise UserError(f"{path}: row {row_number}, column {header[time_index]!r}: "
                                f"{row[time_index]!r} is not a date or time")
            moment = parsed[0]
        values = [_number(row[i], header[i], row_number, path) for i in indices]
        records.append((row_number, moment, values))
    if len(records) < 2:
        raise UserError(f"{path} has {len(records)} data row(s); a series needs at least 2")
    series = Series(str(path), columns, np.empty(0))
    if time_index is not None:
        if sort:
            records.sort(key=lambda record: record[1])
        series.time_column = header[time_index]
        series.time_format = parse_time(rows[0][time_index])[1] if rows else None
        _check_order(records, path)
        series.frequency = infer_frequency([record[1] for record in records])
        records, gaps = _insert_gaps(records, series.frequency, fill, path)
        if gaps:
            series.notes.append(f"{gaps} missing time step(s) filled ({fill})")
        series.times = [record[1] for record in records]
    values = np.array([record[2] for record in records], dtype=np.float64)  # (T, C)
    missing = np.isnan(values)
    if missing.any():
        if fill == "error":
            row_index, column_index = map(int, np.argwhere(missing)[0])
            row_number = records[row_index][0]
            where = f"row {row_number}" if row_number else f"the missing step at " \
                f"{series.format_time(records[row_index][1])}"
            raise UserError(f"{path}: {where}, column {columns[column_index]!r} has no value "
                            f"({int(missing.sum())} empty cell(s) or missing time step(s) in "
                            f"all); pass --fill forward, linear or zero to fill them")
        for index, column in enumerate(columns):
            if missing[:, index].all():
                raise UserError(f"{path}: column {column!r} has no values at all; --fill "
                                f"{fill} needs at least one to fill from")
        values = fill_missing(values, fill)
        series.filled = int(missing.sum())
    series.values = values
    return series


def _check_order(records: list, path: Path) -> None:
    for previous, current in zip(records, records[1:]):
        if current[1] < previous[1]:
            raise UserError(f"{path}: the timestamps are not in increasing order: row "
                            f"{current[0]} ({current[1]}) comes after row {previous[0]} "
                            f"({previous[1]}); sort the file or pass --sort")
        if current[1] == previous[1]:
            raise UserError(f"{path}: rows {previous[0]} and {current[0]} have the same "
                            f"timestamp {current[1]}; expected one reading per time step")


def _insert_gaps(records: list, frequency: Frequency, fill: str, path: Path):
    """Put a row of NaN at every missing step; with ``fill == "error"`` refuse gaps."""
    result = [records[0]]
    gaps = 0
    for previous, current in zip(records, records[1:]):
        steps = frequency.steps_between(previous[1], current[1])
        if abs(steps - round(steps)) > 1e-6:
            raise UserError(f"{path}: row {current[0]} ({current[1]}) is not a whole number "
                            f"of {frequency.describe()} steps after row {previous[0]} "
                            f"({previous[1]}); expected equally spaced timestamps")
        missing = round(steps) - 1
        if missing and fill == "error":
            raise UserError(f"{path}: a gap in the timestamps: {missing} {frequency.describe()} "
                            f"step(s) missing between row {previous[0]} ({previous[1]}) and "
                            f"row {current[0]} ({current[1]}); pass --fill forward, linear "
                            f"or zero to fill gaps")
        for k in range(1, missing + 1):
            result.append((0, frequency.advance(previous[1], k), [math.nan] * len(current[2])))
        gaps += missing
        result.append(current)
    return result, gaps


def fill_missing(values: np.ndarray, fill: str) -> np.ndarray:
    """Fill NaN per column: the last value seen, a straight line between neighbours, or 0."""
    values = values.copy()
    for column in range(values.shape[1]):
        data = values[:, column]
        missing = np.isnan(data)
        if not missing.any():
            continue
        if missing.all():
            raise UserError(f"column {column} has no values at all to fill from")
        if fill == "zero":
            data[missing] = 0.0
        elif fill == "linear":
            known = np.flatnonzero(~missing)
            data[missing] = np.interp(np.flatnonzero(missing), known, data[known])
        else:  # forward; leading gaps take the first value
            index = np.where(~missing, np.arange(len(data)), 0)
            np.maximum.accumulate(index, out=index)
            first = np.flatnonzero(~missing)[0]
            data[:] = np.where(np.arange(len(data)) < first, data[first], data[index])
    return values
