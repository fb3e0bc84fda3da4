"""A JSON collection read one item at a time: ``{"<Key>": [...]}`` (the key in any case,
among other keys) or a bare array.

Each item is decoded by the standard library's C scanner (the one ``json.loads`` uses) as
soon as its text has arrived, so what is held is one read and one item, whatever the number of
items. A value that has not ended within ``BIG_VALUE`` characters (only a hostile answer has
one) is read token by token instead: only the keys its shape names are kept, and a long string
is kept as a stand-in that every reader of the value judges as it would the whole string.
Either way the items are what ``json.loads`` would have put in the array, up to those
stand-ins, and a malformed answer fails as it would.

Pure: bytes in, values out, no I/O beyond reading the given stream.
"""

from __future__ import annotations

import codecs
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import IO, Any, Final, cast

from exporter.emformat import strip_bom

# The keys of an object that are kept, lower-cased, each with the shape of its value. A shape
# also says what is kept of a value that is not an object: a scalar is kept, an array is kept
# empty (only its kind is read), an object is kept with the keys named, in their own case.
Shape = Mapping[str, "Shape"]
SCALAR: Final[Shape] = {}

# Blanks allowed before the answer's first character.
LEADING_LIMIT: Final = 1024 * 1024
# A value not ended within this many characters is read token by token (one that ends within
# twice as many may still be decoded whole).
BIG_VALUE: Final = 1024 * 1024
# A number (or what is not a value at all) longer than this fails the answer.
NUMBER_LIMIT: Final = 1024 * 1024
# Deeper nesting than this fails the answer (the C scanner's own limit is the interpreter's
# recursion limit, 1,000 by default, so every answer it reads stays readable).
NEST_LIMIT: Final = 1000
# Long strings read token by token are kept as stand-ins: blanks before the first character
# dropped, every run of blanks cut to RUN_KEEP characters, and no more than TEXT_KEEP
# characters. A run of RUN_KEEP blanks is longer than any name or UID may be, so a name
# that was too long stays too long; TEXT_KEEP characters collapse to well over the 1,000
# kept of a message even when every other character is a run of blanks.
RUN_KEEP: Final = 300
TEXT_KEEP: Final = 256 * 1024
_READ_SIZE = 64 * 1024
# The stdlib scanner is tried on a nested container only this close to the item: deeper, it
# could rescan the same text once per level.
_FAST_DEPTH = 4
_HEAD_SLICE = 64 * 1024
_STRING_SLICE = 64 * 1024
# The most a number's text can have after what the scanner read of it when the window cuts
# it: "e+" of "1e+5".
_NUMBER_TAIL = 2

_BLANKS = re.compile(r"[ \t\n\r]*")
_NEXT = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
# String content up to its closing quote, a bad character, or the end of what has arrived. A
# high surrogate's escape at the end, alone or before part of an escape, waits for what
# follows: it may pair with it.
_STRING_PART = re.compile(
    r'(?:[^"\\\x00-\x1f]+|\\["\\/bfnrt]'
    r"|\\u(?![dD][89abAB][0-9a-fA-F]{2}(?:\\(?:u[0-9a-fA-F]{0,3})?)?\Z)[0-9a-fA-F]{4})*"
)
# The most of a string that can wait for more text that way: a high surrogate's escape and
# five characters of the next escape.
_ESCAPE_TAIL = 11
_STRING_PART_AT_END = re.compile(r'(?:[^"\\\x00-\x1f]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*')
_LONG_RUN = re.compile(rf"(\s{{{RUN_KEEP}}})\s+")


class JSONError(ValueError):
    """The answer is no readable JSON collection; the message says why."""


# What json.loads reads a value and a string with (the C ones where there are).
_Scanner = Callable[[str, int], tuple[Any, int]]
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def _scanner() -> _Scanner:
    return json.scanner.make_scanner(cast("json.scanner.make_scanner", json.JSONDecoder()))


def iter_collection(stream: IO[bytes], key: str, item: Shape) -> Iterator[Any]:
    """The items of the collection, one at a time.

    ``key`` names the object's array (matched in any case); ``item`` is the shape of an item,
    which matters only for an item too big for the scanner. Fails with JSONError, also after
    items were yielded: a poll reads the whole answer or nothing.
    """
    return _Reader(stream, _head(stream)).collection(key, item)


def _head(stream: IO[bytes]) -> bytes:
    """The answer's first bytes, up to its first character, which must open an object or an
    array: an answer that is no JSON at all (a gzip bomb of zeros, an HTML page) fails on its
    first read, or its second when the first was too short to tell its encoding."""
    head = b""
    while True:
        chunk = stream.read(_HEAD_SLICE)
        head += chunk
        # The encoding is told by the first four bytes after a byte-order mark.
        if chunk and len(strip_bom(head)) < 4:
            continue
        body = strip_bom(head)
        # A character the read cut in two is judged once it is whole.
        decoder = codecs.getincrementaldecoder(json.detect_encoding(body))("replace")
        text = decoder.decode(body, not chunk).lstrip(" \t\r\n\ufeff")
        if text:
            if text[0] not in "{[":
                raise JSONError(f"malformed JSON: the answer starts with {text[:1]!r}")
            return head
        if not chunk:
            return head
        if len(head) > LEADING_LIMIT:
            raise JSONError("malformed JSON: more than 1 MiB of blanks before the answer")


class _Reader:
    """The answer as text: a window on it (``buf``), read and decoded as needed.

    Positions are indices into ``buf``; reading more drops the text before a given position
    and says where that position now is. ``base`` is the answer's offset of ``buf[0]``.
    """

    def __init__(self, stream: IO[bytes], head: bytes) -> None:
        self._stream = stream
        self.eof = False
        body = strip_bom(head)  # at least four bytes, unless that is the whole answer
        encoding = json.detect_encoding(body)
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self.buf = self._decoder.decode(body)
        self.base = 0
        self._scan = _scanner()

    def more(self, pos: int, at_least: int = 0) -> int:
        """Read on, at least ``at_least`` bytes (and at least one read) unless the answer ends
        first; the text before ``pos`` is dropped. Returns where ``pos`` now is. The window is
        copied once per call, however small the reads."""
        if self.eof:
            return pos
        at_least = max(at_least, _READ_SIZE)
        chunks: list[bytes] = []
        got = 0
        while got < at_least:
            chunk = self._stream.read(max(_READ_SIZE, at_least - got))
            if not chunk:
                self.eof = True
                break
            chunks.append(chunk)
            got += len(chunk)
        text = self._decoder.decode(b"".join(chunks), self.eof)
        self.base += pos
        self.buf = self.buf[pos:] + text
        return 0

    def skip(self, pos: int) -> int:
        """The position of the next character that is no blank (or the end of the answer)."""
        while True:
            pos = _BLANKS.match(self.buf, pos).end()  # type: ignore[union-attr]
            if pos < len(self.buf) or self.eof:
                return pos
            pos = self.more(pos)

    def char(self, pos: int) -> str:
        """The character at ``pos`` (as returned by skip), "" at the end of the answer."""
        return self.buf[pos : pos + 1]

    def error(self, what: str, pos: int) -> JSONError:
        return JSONError(f"malformed JSON: {what} at character {self.base + pos}")

    def _failure(self, exc: Exception, pos: int) -> JSONError:
        if isinstance(exc, json.JSONDecodeError):
            return self.error(exc.msg, exc.pos)
        if isinstance(exc, StopIteration):  # its value: where a value was expected
            return self.error("Expecting value", exc.value if isinstance(exc.value, int) else pos)
        return JSONError(f"malformed JSON: {exc}")

    # --- the collection ---------------------------------------------------------------------

    def collection(self, key: str, item: Shape) -> Iterator[Any]:
        pos = self.skip(0)
        opener = self.char(pos)
        if opener == "[":
            pos = yield from self._items(pos + 1, item)
        elif opener == "{":
            pos = yield from self._object(pos + 1, key, item)
        else:
            # _head saw { or [ first; anything else is what a BOM or NUL turned into.
            raise self.error("Expecting value", pos)
        pos = self.skip(pos)
        if pos < len(self.buf):
            raise self.error("Extra data", pos)

    def _object(self, pos: int, key: str, item: Shape) -> Generator[Any, None, int]:
        """The wrapper object's members, its array's items streamed. Returns the end."""
        wanted = key.lower()
        seen = streamed = False
        other: Any = None  # the last non-array value under the key
        pos = self.skip(pos)
        while self.char(pos) != "}":
            if self.char(pos) != '"':
                raise self.error("Expecting property name enclosed in double quotes", pos)
            name, pos = self.string(pos, True)
            pos = self.skip(pos)
            if self.char(pos) != ":":
                raise self.error("Expecting ':' delimiter", pos)
            pos = self.skip(pos + 1)
            if str(name).lower() == wanted:
                if streamed:
                    # json.loads would keep the last one, but the first one's items are
                    # read already: the answer says two things, and is refused.
                    raise JSONError(f"JSON object with more than one {key!r} member")
                seen = True
                if self.char(pos) == "[":
                    pos = yield from self._items(pos + 1, item)
                    streamed = True
                else:
                    other, pos = self.value(pos, SCALAR)
            else:
                _, pos = self.value(pos, None)
            pos = self.skip(pos)
            delimiter = self.char(pos)
            if delimiter == "}":
                break
            if delimiter != ",":
                raise self.error("Expecting ',' delimiter", pos)
            pos = self.skip(pos + 1)
            if self.char(pos) == "}":  # a trailing comma
                raise self.error("Expecting property name enclosed in double quotes", pos)
        if not streamed:
            # Checked once the whole answer is known to be JSON, as json.loads would.
            end = self.skip(pos + 1)
            if end < len(self.buf):
                raise self.error("Extra data", end)
            if not seen:
                raise JSONError(f"JSON object without a {key!r} array")
            if other is not None:
                raise JSONError(f"{key!r} is not an array")
        return pos + 1

    def _items(self, pos: int, item: Shape) -> Generator[Any, None, int]:
        """The array's items, from after its '['. Returns the position after its ']'."""
        scan = self._scan
        pos = self.skip(pos)
        if self.char(pos) == "]":
            return pos + 1
        while True:
            # The common case inline: a whole item in the window, then ", ".
            buf = self.buf
            try:
                value, end = scan(buf, pos)
            except (StopIteration, ValueError, RecursionError):
                value, end = self.value(pos, item)
            else:
                if end + _NUMBER_TAIL >= len(buf):
                    value, end = self.value(pos, item)
            yield value
            buf = self.buf
            following = _NEXT.match(buf, end)
            if following is not None and following.end() < len(buf):
                pos = following.end()
                continue
            pos = self.skip(end)
            delimiter = self.char(pos)
            if delimiter == "]":
                return pos + 1
            if delimiter != ",":
                raise self.error("Expecting ',' delimiter", pos)
            pos = self.skip(pos + 1)

    # --- one value ------------------------------------------------------------------------

    def value(self, pos: int, shape: Shape | None) -> tuple[Any, int]:
        """The value at ``pos`` and the position after it; ``shape`` None: the value is not
        kept (but it is read: it must be JSON)."""
        while True:
            buf = self.buf
            try:
                value, end = self._scan(buf, pos)
            except RecursionError:
                return self._tokens(pos, shape)
            except (StopIteration, ValueError) as exc:
                # Maybe only cut short by the end of the window.
                if self.eof:
                    raise self._failure(exc, pos) from None
                # Without its traceback, which holds this frame: no cycle keeps the window.
                failure: Exception | None = exc.with_traceback(None)
            else:
                # A number this close to the end of the window may go on after it ("1." then
                # "5", "1e" then "+3").
                if end + _NUMBER_TAIL < len(buf) or self.eof:
                    return value, end
                failure = None
            available = len(buf) - pos
            if buf[pos] in '{["':
                if available > BIG_VALUE:
                    return self._tokens(pos, shape)
            elif available > NUMBER_LIMIT:
                raise self._failure(failure, pos) if failure else self.error("Number too long", pos)
            # Twice as much each time: a value is scanned a bounded number of times.
            pos = self.more(pos, available)

    def _complete(self, pos: int) -> tuple[Any, int] | None:
        """The value at ``pos`` if it is whole in the window, without reading on."""
        buf = self.buf
        try:
            value, end = self._scan(buf, pos)
        except (StopIteration, ValueError, RecursionError):
            return None
        return (value, end) if end < len(buf) else None

    def _tokens(self, pos: int, shape: Shape | None) -> tuple[Any, int]:
        """A big value, read token by token: what ``shape`` names is kept, the rest is read
        and dropped; a string is read piece by piece."""
        stack: list[_Open] = []
        while True:
            # A value starts here.
            pos = self.skip(pos)
            opener = self.char(pos)
            value: Any
            if opener in ("{", "["):
                whole = self._complete(pos) if 0 < len(stack) < _FAST_DEPTH else None
                if whole is not None:
                    value, pos = _kept(whole[0], shape), whole[1]
                else:
                    if len(stack) >= NEST_LIMIT:
                        raise self.error(f"nested deeper than {NEST_LIMIT} levels", pos)
                    frame = _Open(opener == "{", shape)
                    stack.append(frame)
                    pos = self.skip(pos + 1)
                    if self.char(pos) != frame.closer:
                        shape, pos = self._member(pos, frame) if frame.is_object else (None, pos)
                        continue
                    value, pos = stack.pop().kept, pos + 1
            elif opener == '"':
                value, pos = self.string(pos, shape is not None)
            elif opener and opener not in "]}:,":
                value, pos = self.value(pos, shape)
            else:
                raise self.error("Expecting value", pos)
            # The value is complete: it goes to its container, and the containers that end
            # after it are complete too.
            while stack:
                frame = stack[-1]
                if frame.key is not None:
                    frame.kept[frame.key] = value
                elif not frame.is_object:
                    pos = self._elements(pos)
                pos = self.skip(pos)
                delimiter = self.char(pos)
                if delimiter == ",":
                    pos = self.skip(pos + 1)
                    shape, pos = self._member(pos, frame) if frame.is_object else (None, pos)
                    break
                if delimiter != frame.closer:
                    raise self.error("Expecting ',' delimiter", pos)
                value, pos = stack.pop().kept, pos + 1
            else:
                return value, pos

    def _elements(self, pos: int) -> int:
        """Past the array elements after ``pos`` that are whole in the window (an array's
        elements are never kept): a long list of small values goes at the scanner's speed."""
        buf, scan = self.buf, self._scan
        limit = len(buf) - _NUMBER_TAIL
        while (following := _NEXT.match(buf, pos)) is not None:
            try:
                _, end = scan(buf, following.end())
            except (StopIteration, ValueError, RecursionError):
                break  # read token by token, which tells what is wrong, if anything
            if end >= limit:
                break
            pos = end
        return pos

    def _member(self, pos: int, frame: _Open) -> tuple[Shape | None, int]:
        """An object member's key and colon; the shape of its value (None: not kept)."""
        if self.char(pos) != '"':
            raise self.error("Expecting property name enclosed in double quotes", pos)
        key, pos = self.string(pos, frame.kept is not None)
        pos = self.skip(pos)
        if self.char(pos) != ":":
            raise self.error("Expecting ':' delimiter", pos)
        frame.key = None
        shape = None
        if frame.members is not None:
            name = key.lower()  # type: ignore[union-attr]
            shape = frame.members.get(name)
            if shape is not None:
                shape = frame.keep(name, key)  # type: ignore[arg-type]
        return shape, self.skip(pos + 1)

    def string(self, pos: int, keep: bool) -> tuple[str | None, int]:
        """The string whose opening quote is at ``pos`` (a stand-in if it is long), None when
        not kept, and the position after it."""
        try:
            text, end = _scanstring(self.buf, pos + 1)
        except json.JSONDecodeError:
            pass  # cut short by the window's end, or bad: read piece by piece
        else:
            return (text if keep else None), end
        start = self.base + pos
        pos += 1
        kept, compacted, full = "", False, False
        while True:
            buf = self.buf
            # A slice at a time: the regex engine's memory grows with each escape it matches.
            # A slice holds what may wait at its end, so each one gets past something.
            limit = min(len(buf), pos + max(_STRING_SLICE, 2 * _ESCAPE_TAIL))
            last = self.eof and limit == len(buf)
            end = (_STRING_PART_AT_END if last else _STRING_PART).match(buf, pos, limit).end()  # type: ignore[union-attr]
            if keep and not full and end > pos:
                kept += _scanstring(buf[pos:end] + '"', 0)[0]
                if len(kept) > 2 * TEXT_KEEP:
                    kept, compacted = _compact(kept), True
                    full = len(kept) >= TEXT_KEEP  # nothing that follows can matter
            stop = buf[end] if end < limit else ""
            if stop == '"':
                if not keep:
                    return None, end + 1
                return (_compact(kept) if compacted else kept), end + 1
            if not stop or (stop == "\\" and limit - end <= _ESCAPE_TAIL):
                # Cut short by the slice or the window, maybe in an escape.
                if limit < len(buf):
                    pos = end
                    continue
                if not self.eof:
                    pos = self.more(end)
                    continue
            if not stop:
                raise JSONError(
                    f"malformed JSON: Unterminated string starting at character {start}"
                )
            raise self.error(
                "Invalid \\escape" if stop == "\\" else "Invalid control character", end
            )


class _Open:
    """A container being read token by token."""

    __slots__ = ("_holders", "_seen", "closer", "is_object", "kept", "key", "members")

    def __init__(self, is_object: bool, shape: Shape | None) -> None:
        self.is_object = is_object
        self.closer = "}" if is_object else "]"
        self.kept: Any = None if shape is None else ({} if is_object else [])
        self.members = shape if is_object else None
        self.key: str | None = None  # the kept member whose value is being read
        self._holders: dict[str, str] = {}
        self._seen: set[str] = set()

    def keep(self, name: str, key: str) -> Shape | None:
        """Whether the member ``key`` (lower-cased: ``name``) is kept: json.loads keeps the
        last value of each key, and of the keys that differ only in case the one that came
        first latest, so an earlier spelling is dropped as soon as a new one comes."""
        holder = self._holders.get(name)
        if key != holder:
            if key in self._seen:
                return None
            if holder is not None:
                del self.kept[holder]
            self._holders[name] = key
            self._seen.add(key)
        self.key = key
        return self.members[name]  # type: ignore[index]


def _kept(value: Any, shape: Shape | None) -> Any:
    """What a value decoded whole keeps of itself under ``shape``."""
    if shape is None:
        return None
    if isinstance(value, dict):
        return {
            key: _kept(member, shape[key.lower()])
            for key, member in value.items()
            if key.lower() in shape
        }
    if isinstance(value, list):
        return []
    return value


def _compact(text: str) -> str:
    """A long string's stand-in: blanks before it dropped, runs of blanks cut, cut short."""
    return _LONG_RUN.sub(r"\1", text.lstrip())[:TEXT_KEEP]
