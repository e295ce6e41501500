from itertools import pairwise

from embed_assets.lib.text import (
    chunk_id,
    chunk_repository,
    repository_text,
    sha256_hex,
    split_text,
)


def test_template_names_what_is_embedded_and_skips_empty_fields():
    text = repository_text("octo/cat", "A cat.", "Go", ["pets", "cli"], None)
    assert text == "octo/cat\nA cat.\nLanguage: Go\nTopics: pets, cli"
    assert repository_text("octo/cat", None, None, [], None) == "octo/cat"
    assert repository_text("a/b", "d", None, [], "Readme body").endswith("d\n\nReadme body")


def test_short_text_is_one_chunk_with_stable_id_and_hash_of_exact_text():
    text = repository_text("octo/cat", "A cat.", "Go", [], None)
    [chunk] = chunk_repository("octo/cat", text, 1500, 200)
    assert chunk.chunk_id == chunk_id("octo/cat", 0) == "octo/cat#0"
    assert chunk.text == text
    assert chunk.content_hash == sha256_hex(text)
    assert len(chunk.content_hash) == 64


def _readme(paragraphs: int, sentences: int) -> str:
    return "\n\n".join(
        " ".join(
            f"Paragraph {p} sentence {s} talks about topic {p * 100 + s}." for s in range(sentences)
        )
        for p in range(paragraphs)
    )


def test_long_readme_splits_within_bounds_on_sentence_boundaries_with_overlap():
    text = repository_text("octo/cat", "A cat.", None, [], _readme(8, 12))
    chunks = chunk_repository("octo/cat", text, 600, 150)
    assert len(chunks) > 5
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert len(chunk.text) <= 600
        assert chunk.text.startswith("octo/cat")
        assert chunk.text.rstrip().endswith(".")  # never cut inside a sentence here
    for before, after in pairwise(chunks):
        body = after.text.split("\n", 1)[1]
        first_sentence = body.split(". ")[0].lstrip("\n") + "."
        assert first_sentence in before.text, "each chunk starts with the end of the previous one"


def test_chunking_is_deterministic_and_ids_stay_put_when_the_end_changes():
    text = repository_text("o/r", "d", None, [], _readme(6, 10))
    first = chunk_repository("o/r", text, 500, 100)
    assert first == chunk_repository("o/r", text, 500, 100)
    shorter = chunk_repository(
        "o/r", repository_text("o/r", "d", None, [], _readme(3, 10)), 500, 100
    )
    assert len(shorter) < len(first)
    assert [c.text for c in shorter[:2]] == [c.text for c in first[:2]]


def test_text_without_spaces_is_cut_hard():
    cjk = "向量数据库" * 400
    pieces = split_text(cjk, 300, 0)
    assert all(len(p) <= 300 for p in pieces)
    assert "".join(pieces) == cjk


def test_paragraphs_and_lines_survive_the_split():
    text = "line one\nline two\n\nnext paragraph. Second sentence."
    assert split_text(text, 1000, 0) == [text]
