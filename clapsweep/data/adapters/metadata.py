"""Reading a dataset's metadata files (CSV, JSON, YAML, plain text), with the clear errors.

A metadata file that is missing, not UTF-8, split by another delimiter or missing a column
raises DatasetError naming the file and the fix: nothing can be read without it. Encodings are
never guessed (the guess in a message is only for the iconv command that fixes the file).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

import yaml

from clapsweep.data.adapters.layouts import LAYOUTS
from clapsweep.data.manifest import DatasetError


def _not_found(dataset: str, path: Path) -> DatasetError:
    return DatasetError(
        f"{dataset}: {path} not found; expected {LAYOUTS[dataset]}, see docs/datasets.md"
    )


def _require(dataset: str, path: Path) -> Path:
    if not path.is_file():
        raise _not_found(dataset, path)
    return path


def _encoding_guess(data: bytes) -> str:
    """A likely encoding for the iconv command in the error message (never used to decode)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data:
        return "utf-16"
    for encoding in ("cp949", "cp1252"):
        try:
            data.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin1"


def _not_utf8(dataset: str, path: Path, data: bytes, start: int) -> DatasetError:
    line = data.count(b"\n", 0, start) + 1
    guess, quoted, tmp = _encoding_guess(data), shlex.quote(str(path)), "utf8.tmp"
    return DatasetError(
        f"{dataset}: {path} is not UTF-8 text (line {line}: byte 0x{data[start]:02x}); "
        f"re-save it as UTF-8: iconv -f {guess} -t utf-8 {quoted} > {tmp} && mv {tmp} {quoted} "
        f"({guess} is a guess from the bytes; check it)"
    )


def _read_text(dataset: str, path: Path, fallback: str = "") -> str:
    """The text of a dataset's metadata file (read_utf8), which must exist."""
    _require(dataset, path)
    return read_utf8(dataset, path, fallback)


def read_utf8(name: str, path: Path, fallback: str = "") -> str:
    """The text of a metadata file, which must be UTF-8 (a leading byte-order mark is dropped).

    Encodings are never guessed: a file that is not UTF-8 is an error naming the line of the
    first bad byte and the command that fixes it. `fallback` is for a file whose publisher
    documents another encoding.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{name}: {path} cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if fallback:
            return data.decode(fallback)
        raise _not_utf8(name, path, data, e.start) from None
    if "\x00" in text:  # UTF-16 without a byte-order mark decodes as UTF-8 with NUL bytes
        raise _not_utf8(name, path, data, data.index(b"\x00"))
    return text


_DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def _delimiter_hint(line: str, expected: str, what: str) -> str:
    """ "<what> looks ';'-separated; expected commas" when another delimiter outnumbers the
    expected one in `line`, else "". Counting is enough: a header or row split by the wrong
    delimiter holds the other one several times and the expected one rarely."""
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(counts, key=counts.__getitem__)
    if counts[best] <= counts[expected]:
        return ""
    return f"{what} looks {best!r}-separated; expected {_DELIMITERS[expected]}"


def _read_csv(
    dataset: str, path: Path, columns: Iterable[str], fallback: str = ""
) -> list[dict[str, str]]:
    """Rows of a comma-separated UTF-8 CSV with a header; every name in `columns` must be a
    header column."""
    text = _read_text(dataset, path, fallback)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in reader.fieldnames or []]
        for column in columns:
            if column not in header:
                raise _no_column(dataset, path, column, header, text.partition("\n")[0])
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as e:
        raise DatasetError(
            f"{dataset}: {path} line {reader.line_num} is not valid CSV ({e})"
        ) from None


def _no_column(
    dataset: str, path: Path, column: str, header: list[str], first_line: str
) -> DatasetError:
    found = ", ".join(header) if header else "no header line"
    start = f"{dataset}: {path} has no column '{column}' (found: {found})"
    hint = _delimiter_hint(first_line, ",", "the header")
    if hint:
        return DatasetError(f"{start}; {hint}: re-save it comma-separated (docs/datasets.md)")
    return DatasetError(f"{start}; expected {LAYOUTS[dataset]}, see docs/datasets.md")


def _yaml_error(path: Path, error: yaml.YAMLError) -> DatasetError:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return DatasetError(f"macs: {path} is not valid YAML ({where}{_collapse(problem)})")


def _read_json(dataset: str, path: Path) -> object:
    try:
        return json.loads(_read_text(dataset, path))
    except json.JSONDecodeError as e:
        raise DatasetError(
            f"{dataset}: {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None


def _collapse(text: str) -> str:
    return " ".join(str(text).split())


def _freesound(value: str) -> str:
    """'freesound:<id>' for a Freesound sound id ('123', or '123.0' as some tools write it)."""
    match = re.fullmatch(r"(\d+)(?:\.0*)?", value.strip())
    return f"freesound:{int(match.group(1))}" if match else ""
