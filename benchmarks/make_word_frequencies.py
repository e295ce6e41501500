"""Write the word-frequency table that the offline provider `offline-hash-v2` ships as package data.

    pip install wordfreq==3.1.1      # in a scratch venv: wordfreq is not a dependency of ours
    python benchmarks/make_word_frequencies.py

The table is the 50,000 most frequent English words of wordfreq 3.1.1 (its data: Wikipedia,
subtitles, news, books, web text, Twitter and Reddit, under CC BY-SA 4.0), each with its Zipf
frequency (log10 of its uses per billion words), keeping only words the provider reads as one
word (letters and digits alone), as "word<TAB>zipf" lines, gzipped without a timestamp so that the
same wordfreq writes the same bytes. Shipping the table (~250 KB) rather than depending on
wordfreq keeps the install light and the vectors fixed whatever wordfreq releases later.
"""

import gzip
import io
import unicodedata
from pathlib import Path

import wordfreq

OUT = Path(__file__).resolve().parents[1] / "embed_assets/lib/providers/word_frequencies.tsv.gz"
WORDS = 50_000


def main() -> None:
    lines = []
    for word in wordfreq.top_n_list("en", WORDS):
        word = unicodedata.normalize("NFKC", word).lower()
        if word.isalnum():
            lines.append(f"{word}\t{wordfreq.zipf_frequency(word, 'en'):.2f}\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as file:
        file.write("".join(lines).encode("utf-8"))
    OUT.write_bytes(buffer.getvalue())
    print(f"{OUT}: {len(lines):,} words, {len(buffer.getvalue()):,} bytes")


if __name__ == "__main__":
    main()
