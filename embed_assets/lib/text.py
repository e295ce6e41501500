"""From a row to the exact texts we embed: a template, then overlapping chunks.

Splitting prefers paragraph boundaries, then sentence boundaries, then spaces, so a chunk rarely
cuts a sentence. Every chunk of a repository starts with its name, so that a chunk from deep
inside a README still says whose it is; other rows' chunks are their text alone.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?。！？]) +")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def repository_text(
    full_name: str,
    description: str | None,
    language: str | None,
    topics: Sequence[str],
    readme: str | None,
) -> str:
    """The template: name, description, language and topics, then the README after a blank line.

    Stars, forks and times are left out on purpose: they change often and say nothing about what a
    repository is, so changing them must not cause re-embedding.
    """
    lines = [full_name]
    if description:
        lines.append(description)
    if language:
        lines.append(f"Language: {language}")
    if topics:
        lines.append("Topics: " + ", ".join(topics))
    text = "\n".join(lines)
    if readme:
        text += "\n\n" + readme
    return text


def _pieces(text: str, limit: int) -> list[tuple[str, str]]:
    """Sentences no longer than limit, each with the separator that joins it to the one before
    (a blank line where a paragraph starts, a newline where a line starts, else a space), so that
    joining them gives back the text with only its runs of spaces folded. Sentences longer than
    limit are cut at a space, or hard where there is none (CJK, long URLs)."""
    pieces: list[tuple[str, str]] = []
    for paragraph in _PARAGRAPH.split(text):
        separator = "\n\n"
        for line in paragraph.strip().split("\n"):
            for sentence in _SENTENCE.split(_SPACES.sub(" ", line).strip()):
                while len(sentence) > limit:
                    cut = sentence.rfind(" ", 0, limit + 1)
                    cut = cut if cut > limit // 2 else limit
                    pieces.append((sentence[:cut].rstrip(), separator))
                    sentence, separator = sentence[cut:].lstrip(), " "
                if sentence:
                    pieces.append((sentence, separator))
                    separator = " "
            separator = "\n" if separator == " " else separator
    return pieces


def split_text(text: str, budget: int, overlap: int) -> list[str]:
    """Greedy packing of sentences into chunks of at most `budget` characters.

    Each chunk after the first repeats whole trailing sentences of the previous chunk, up to
    `overlap` characters, so that context at a boundary is not lost.
    """
    chunks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = 0
    for piece in _pieces(text, budget):
        cost = len(piece[0]) + len(piece[1])
        if current and size + cost > budget:
            chunks.append(current)
            carried: list[tuple[str, str]] = []
            carried_size = 0
            for previous in reversed(current):
                previous_cost = len(previous[0]) + len(previous[1])
                if carried_size + previous_cost + cost > min(overlap, budget - cost):
                    break
                carried.insert(0, previous)
                carried_size += previous_cost
            current, size = carried, carried_size
        current.append(piece)
        size += cost
    if current:
        chunks.append(current)
    return ["".join(sep + t for t, sep in chunk)[len(chunk[0][1]) :] for chunk in chunks]


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    key: str
    position: int
    text: str
    content_hash: str


def chunk_id(key: str, position: int) -> str:
    """Stable per (row, position): re-chunking a changed README keeps the ids of its chunks."""
    return f"{key}#{position}"


def template_fields(template: str) -> list[str]:
    """The columns a template (`"{subject}\n\n{body}"`) reads, in order, each once."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    return list(dict.fromkeys(names))


def render_template(template: str, fields: dict) -> str:
    """The template with each column's value; a NULL is an empty string."""
    return template.format_map({k: "" if v is None else v for k, v in fields.items()}).strip()


def chunk_text(key: str, text: str, max_chars: int, overlap: int) -> list[Chunk]:
    texts = [text] if len(text) <= max_chars else split_text(text, max_chars, overlap)
    return [Chunk(chunk_id(key, i), key, i, t, sha256_hex(t)) for i, t in enumerate(texts)]


def chunk_repository(full_name: str, text: str, max_chars: int, overlap: int) -> list[Chunk]:
    if len(text) <= max_chars:
        texts = [text]
    else:
        # The first chunk starts with the name already; later ones get it as a first line, and the
        # budget leaves room for it (a very long name must not starve the content).
        budget = max(max_chars - len(full_name) - 1, max_chars // 2)
        texts = split_text(text, budget, overlap)
        texts = texts[:1] + [f"{full_name}\n{t}" for t in texts[1:]]
    return [
        Chunk(chunk_id(full_name, i), full_name, i, t, sha256_hex(t)) for i, t in enumerate(texts)
    ]


def bounded(chunks: list[Chunk], max_chunks: int) -> tuple[list[Chunk], bool]:
    """A row's first `max_chunks` chunks, and whether that cut any: one row of a huge text must
    not crowd a collection's searches or its embedding budget."""
    return chunks[:max_chunks], len(chunks) > max_chunks
