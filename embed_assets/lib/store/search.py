"""Search: nearest vectors, matching words, and the two fused; k distinct rows, best first.

Each arm returns rows, not chunks: a row's best chunk stands for it. The approximate index hands
back nearest *chunks*, so a row of hundreds of chunks can fill the candidates alone; each arm
widens its candidates until k rows are found or there are no more, and the vector arm falls back
to an exact scan when even the widest index search leaves it short.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, wait

import numpy as np
from psycopg import sql

from embed_assets.lib.store.base import Space, StoreBase

MAX_CANDIDATES = 1000  # hnsw.ef_search's ceiling: the index returns no more than this at once
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)
# The word ranking's weight in the fusion, the vector ranking's being 1. Measured on
# benchmarks/quality.py's evaluation (benchmarks/search_modes.py, offline vectors, p@10): weight
# 1.0 0.247, 0.7 0.288, 0.5 0.288, 0.3 0.288, vector alone 0.288, words alone 0.180. Below 1 the
# words break ties and lift rows holding rare query words without outvoting the vectors.
TEXT_WEIGHT = 0.5
# The text arm ranks at most this many matching chunks (measured at 113K chunks: 1.7 ms a
# search at 100, 3.9 ms at 300, 15 ms at 1,000, where vector search takes ~8 ms). Its rank is
# ts_rank (how often the query's words occur) divided by the chunk's length (2: else a long chunk
# repeating a word outranks a short row made of it), mapped to [0, 1) as rank / (rank + 1) (32);
# ts_rank_cd, which also weighs how close together the words are, costs 3.4x more (measured).
MAX_MATCHES = 200
WORD_STATS_SECONDS = 300.0
# Pseudo-relevance feedback (Rocchio): the query's vector moved towards the mean of its best
# rows' vectors, FEEDBACK_WEIGHT times as much as the query, ranks the candidates again. The
# best rows: at most FEEDBACK_ROWS, each scoring at least FEEDBACK_SHARE of the best one, so that
# one row far better than the rest (a query made of its words) is not pulled down by the others.
# Measured in docs/benchmarks.md (benchmarks/search_modes.py, benchmarks/query_feedback.py).
FEEDBACK_ROWS = 3
FEEDBACK_WEIGHT = 2.0
FEEDBACK_SHARE = 0.8

Hit = tuple[str, float, str, dict | None]  # key, score, text, metadata


class SearchQueries(StoreBase):
    def search(
        self,
        space: Space,
        vector: np.ndarray,
        k: int,
        *,
        language: str | None = None,
        min_stars: int | None = None,
        where: Mapping[str, str] | None = None,
        group: str | None = None,
        exact: bool = False,
        feedback: bool = False,
        min_similarity: float | None = None,
    ) -> list[Hit]:
        """The k rows whose best chunk is nearest `vector` by cosine, as (key, score = cosine
        similarity, text of that chunk, metadata). Filters: `language` and `min_stars` of a
        repositories collection; `where` (metadata column = value, all of them) and `group` of a
        table collection; `min_similarity` leaves out the rows less similar than that.

        `feedback`: rank by the query moved towards its best rows instead (`_fed_back`); a row's
        score stays its best chunk's cosine similarity to the query itself, so a cutoff on it
        still means "this close to what was asked" (the scores are then not in order), and it is
        applied before the ranking. The candidates are the same chunks (the text shown is the
        chunk the moved query likes best): no second index search, and still k distinct rows.

        Through the HNSW index, fetching a few times k chunks and filtering them; while they make
        fewer than k rows, more are fetched (and ef_search raised with them) up to
        MAX_CANDIDATES, then the same query runs exactly over the filtered rows (pgvector 0.6
        has no iterative index scans). `exact` scans the vectors without the index (the recall
        check compares the two)."""
        filtered = _filtered(language, min_stars, where, group)
        metadata, condition = self._filter_sql(language, min_stars, where)
        params = {"q": vector, "language": language, "min_stars": min_stars, "group": group}
        # The query vector goes in binary (`%b`): parsing 384 floats from text cost 0.4 ms of a
        # 4 ms search. The distance as a function call is one no index can order by: a scan of
        # the vectors alone (84 ms at 113K 384-d vectors), where a join first reads every chunk
        # and row (~1 s). Candidates carry no text or metadata: those are read for the k hits
        # alone (`_hits`), since reading them for every candidate cost more than the second
        # round trip (docs/benchmarks.md).
        distance = "cosine_distance(embedding, %(q)b)" if exact else "embedding <=> %(q)b"
        vectors = sql.SQL(", e.embedding" if feedback else "")
        nearest = self._sql(
            "SELECT c.key, 1 - e.distance, e.chunk_id {vectors} FROM ("
            "  SELECT chunk_id, embedding, {distance} AS distance FROM {table} "
            "  ORDER BY {distance} LIMIT %(n)s) e "
            "{joined} WHERE {condition} ORDER BY e.distance",
            vectors=vectors,
            distance=sql.SQL(distance),
            table=self.t(space.table),
            joined=self._joined(),
            condition=condition,
        )
        for candidates in _widening(k, filtered):
            if not exact:
                self._set_ef_search(min(max(self.settings.ef_search, candidates), MAX_CANDIDATES))
            returned = self.execute(nearest, params | {"n": candidates}, binary=feedback)
            returned = returned.fetchall()
            if len({row[0] for row in returned}) >= k:
                ranked = _ranked(returned, vector, k, feedback, min_similarity)
                return self._hits(ranked, metadata)
        # Short even at the widest: every row's best chunk, exactly.
        exhaustive = self._sql(
            "SELECT key, 1 - distance, chunk_id {vectors} FROM ("
            "  SELECT DISTINCT ON (c.key) c.key, cosine_distance(e.embedding, %(q)b) AS "
            "distance, e.chunk_id, e.embedding FROM {table} e {joined} "
            "  WHERE {condition} ORDER BY c.key, distance) e "
            "ORDER BY distance, key LIMIT %(k)s",
            vectors=vectors,
            table=self.t(space.table),
            joined=self._joined(),
            condition=condition,
        )
        # With feedback, more rows than k to re-rank, as the index path has.
        rows = 4 * k if feedback else k
        returned = self.execute(exhaustive, params | {"k": rows}, binary=feedback).fetchall()
        return self._hits(_ranked(returned, vector, k, feedback, min_similarity), metadata)

    def _hits(self, best: list[tuple], metadata: sql.Composable) -> list[Hit]:
        """Hits of (key, score, chunk_id) rows: each with its chunk's text and row's metadata."""
        if not best:
            return []
        details = self._sql(
            "SELECT c.chunk_id, c.text, {metadata} FROM {chunks} c {rows_join} "
            "WHERE c.chunk_id = ANY(%s)",
            metadata=metadata,
            chunks=self.t("chunks"),
            rows_join=self._rows_join(),
        )
        found = {row[0]: row[1:] for row in self.execute(details, ([b[2] for b in best],))}
        # A chunk a sync deleted between the two statements is left out, not an error.
        return [_hit(key, score, *found[chunk]) for key, score, chunk in best if chunk in found]

    def text_search(
        self,
        query: str,
        k: int,
        *,
        language: str | None = None,
        min_stars: int | None = None,
        where: Mapping[str, str] | None = None,
        group: str | None = None,
        max_matches: int = MAX_MATCHES,
    ) -> list[Hit]:
        """The k rows whose best chunk matches the words of `query` best (PostgreSQL full-text
        search, English stemming, through the GIN index on `chunks.words`), as (key, score, text,
        metadata) with score = ts_rank normalised to [0, 1). Rows holding none of the words are
        not returned, so there may be fewer than k. Same filters as `search`.

        Which chunks match (`_words_query`): any of the query's rarer words, so that rows
        holding more of them rank first; ranking is the cost (~5 us a chunk, 0.1 s for a query
        of common words matching 19K chunks of 113K), so the words picked are the rarest ones
        that together match at most `max_matches` chunks by the planner's statistics, and no more
        than that are ranked; when even the rarest word matches more, chunks holding all
        of the words."""
        words = self._words_query(query, max_matches)
        if words is None:
            return []
        tsquery, cap = words
        metadata, condition = self._filter_sql(language, min_stars, where)
        params = {"query": tsquery, "cap": cap}
        params |= {"language": language, "min_stars": min_stars, "group": group}
        filtered = _filtered(language, min_stars, where, group)
        # Unfiltered, the best n chunks are picked before the join: n rows looked up, not all.
        ranked_first = sql.SQL("" if filtered else "ORDER BY rank DESC, key LIMIT %(n)s")
        matching = self._sql(
            "SELECT c.key, c.rank, c.text, {metadata} FROM ("
            "  SELECT key, text, ts_rank(words, %(query)s::tsquery, 2 | 32) AS rank FROM ("
            "    SELECT key, text, words FROM {chunks} WHERE words @@ %(query)s::tsquery "
            "    LIMIT %(cap)s) matched {ranked_first}) c {rows_join} "
            "WHERE {condition} ORDER BY c.rank DESC, c.key LIMIT %(n)s",
            metadata=metadata,
            chunks=self.t("chunks"),
            ranked_first=ranked_first,
            rows_join=self._rows_join(),
            condition=condition,
        )
        best: dict[str, Hit] = {}
        for candidates in _widening(k, filtered):
            returned = self.execute(matching, params | {"n": candidates}).fetchall()
            best = _best_per_row(returned)
            if len(best) >= k or len(returned) < candidates:  # enough, or every match is here
                return list(best.values())[:k]
        best = _best_per_row(self.execute(matching, params | {"n": None}))  # LIMIT NULL: all
        return list(best.values())[:k]

    def _words_query(self, query: str, max_matches: int) -> tuple[str, int | None] | None:
        """(the tsquery text to match chunks with, how many matches to rank at most) for
        `query`, or None when it has no words to search (stop words only)."""
        terms = self.execute(
            "SELECT tsvector_to_array(to_tsvector('english', %s))", (query,)
        ).fetchone()[0]
        if not terms:
            return None
        shares = self._word_shares()
        if shares is None:  # never analysed: a small or new table, every word
            return " | ".join(map(_lexeme, terms)), None
        known, rarest_known = shares
        share_of = {t: known.get(t, rarest_known / 2) for t in terms}  # unlisted: rarer
        picked, spent = [], 0.0
        for term in sorted(terms, key=share_of.__getitem__):
            if spent + share_of[term] > max_matches / max(self._chunk_count, 1):
                break
            picked.append(term)
            spent += share_of[term]
        if not picked:
            return " & ".join(map(_lexeme, terms)), None
        return " | ".join(map(_lexeme, picked)), max_matches

    def _word_shares(self) -> tuple[dict[str, float], float] | None:
        """({lexeme: share of chunks holding it} for the commonest ones, the smallest share
        listed) from the planner's statistics of `chunks.words` (ANALYZE, autovacuum), read
        again after WORD_STATS_SECONDS; None when the table was never analysed."""
        kept = getattr(self, "_word_stats", None)
        if kept is not None and time.monotonic() - kept[0] < WORD_STATS_SECONDS:
            return kept[1]
        row = self.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples "
            "FROM pg_stats s, pg_class c WHERE s.schemaname = %s AND s.tablename = 'chunks' "
            "AND s.attname = 'words' AND c.oid = to_regclass(%s)",
            (self.schema, f'"{self.schema}".chunks'),
        ).fetchone()
        shares = None
        if row is not None and row[0]:
            elements, frequencies, self._chunk_count = row[0], row[1], int(row[2])
            # The frequencies list ends with the minimum, the maximum and the null share.
            shares = dict(zip(elements, frequencies, strict=False)), min(frequencies[:-3])
        self._word_stats = (time.monotonic(), shares)
        return shares

    def hybrid_search(
        self,
        space: Space,
        vector: np.ndarray,
        query: str,
        k: int,
        *,
        min_similarity: float | None = None,
        feedback: bool = False,
        words: tuple[SearchQueries, Executor] | None = None,
        **filters,
    ) -> list[Hit]:
        """Both arms, k rows each, fused by weighted reciprocal rank: a row's score is the sum
        over the arms that found it of weight / (RRF_K + its rank there), the vector arm's weight
        1 and the words' TEXT_WEIGHT, divided by the most a row can get (first in both): 1.0 is
        first in both arms, 0.67 first by vectors alone, 0.33 first by words alone. The text of
        a row is its best chunk by vectors when that arm found it, else by words.
        `min_similarity` leaves out of the vector ranking the rows below that cosine similarity:
        a row far from the query's meaning then stays only if it holds the query's words;
        `feedback` is the vector arm's (see `search`).

        `words`: (another store of the same collection, an executor): the text arm runs on that
        store's connection in the executor while this connection runs the vector arm, so that a
        search takes the slower arm's time instead of the two arms' sum (a server process each)."""
        pending = words[1].submit(words[0].text_search, query, k, **filters) if words else None
        try:
            by_vector = self.search(
                space, vector, k, feedback=feedback, min_similarity=min_similarity, **filters
            )
        finally:  # whatever happened here, the other connection is idle before either is reused
            if pending is not None:
                wait([pending])
        by_words = pending.result() if pending else self.text_search(query, k, **filters)
        return fuse([(by_vector, 1.0), (by_words, TEXT_WEIGHT)], k)

    # -- the parts both arms share --------------------------------------------------------------
    def _filter_sql(
        self, language: str | None, min_stars: int | None, where: Mapping[str, str] | None
    ) -> tuple[sql.Composable, sql.Composable]:
        """(the metadata a hit carries, the WHERE condition of the filters) over `r`, the rows."""
        if self.table_spec is None:
            metadata = sql.SQL(
                "jsonb_build_object('language', r.language, 'stars', r.stars, 'url', r.url)"
            )
            condition = sql.SQL(
                "(%(language)s::text IS NULL OR lower(r.language) = lower(%(language)s::text)) "
                "AND (%(min_stars)s::bigint IS NULL OR r.stars >= %(min_stars)s::bigint)"
            )
        else:
            metadata = sql.SQL("r.metadata")
            condition = sql.SQL("(%(group)s::text IS NULL OR r.group_key = %(group)s::text)")
        # Compared as text: a value from the command line is a string whatever the column's type.
        for column, value in (where or {}).items():
            condition = sql.SQL("{} AND ({} ->> {}) = {}").format(
                condition, metadata, sql.Literal(column), sql.Literal(value)
            )
        return metadata, condition

    def _rows_join(self) -> sql.Composed:
        return self._sql(
            "JOIN {rows} r ON {key} = c.key", rows=self.rows, key=sql.Identifier("r", self.rows_key)
        )

    def _joined(self) -> sql.Composed:
        return self._sql(
            "JOIN {chunks} c USING (chunk_id) {rows_join}",
            chunks=self.t("chunks"),
            rows_join=self._rows_join(),
        )

    def _set_ef_search(self, ef_search: int) -> None:
        # Set for the connection, once per value: a transaction around each query to scope it
        # would cost three more round trips per search.
        if self._ef_search != ef_search:
            self.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef_search)))
            self._ef_search = ef_search


def fuse(rankings: Iterable[tuple[list[Hit], float]], k: int) -> list[Hit]:
    """Weighted reciprocal rank fusion of best-first row lists, each with its weight (see
    `SearchQueries.hybrid_search`)."""
    lists = list(rankings)
    scores: dict[str, float] = {}
    first_seen: dict[str, Hit] = {}
    for ranking, weight in lists:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit[0]] = scores.get(hit[0], 0.0) + weight / (RRF_K + rank)
            first_seen.setdefault(hit[0], hit)
    most = sum(weight for _, weight in lists) / (RRF_K + 1)
    order = sorted(scores, key=lambda key: (-scores[key], key))[:k]
    return [(key, scores[key] / most, *first_seen[key][2:]) for key in order]


def _lexeme(term: str) -> str:
    """A lexeme quoted for tsquery input: in quotes, quotes doubled, backslashes escaped."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _filtered(language, min_stars, where, group) -> bool:
    return bool(where) or any(f is not None for f in (language, min_stars, group))


def _widening(k: int, filtered: bool) -> list[int]:
    """Candidate chunks to fetch, growing until MAX_CANDIDATES: a few times k (more when filters
    will drop some), then four times as many each time."""
    candidates = max(16 * k, 200) if filtered else 4 * k
    steps = []
    while candidates < MAX_CANDIDATES:
        steps.append(candidates)
        candidates *= 4
    return [*steps, MAX_CANDIDATES]


def _ranked(
    chunks: list, vector: np.ndarray, k: int, feedback: bool, min_similarity: float | None
) -> list[tuple]:
    """The best k rows of candidate chunks (key, score, chunk_id[, vector]; nearest first) as
    (key, score, chunk_id): each row's best chunk, scored by its most similar one (with feedback
    the two may differ), the rows less similar than `min_similarity` left out first."""
    score: dict[str, float] = {}
    for chunk in chunks:
        score.setdefault(chunk[0], chunk[1])  # nearest first: the row's highest
    if min_similarity is not None:
        chunks = [chunk for chunk in chunks if score[chunk[0]] >= min_similarity]
    if feedback:
        chunks = _fed_back(chunks, vector)
    best: dict[str, tuple] = {}
    for chunk in chunks:
        best.setdefault(chunk[0], (chunk[0], score[chunk[0]], chunk[2]))
    return list(best.values())[:k]


def _fed_back(chunks: list, vector: np.ndarray) -> list[tuple]:
    """The candidate chunks (key, score, chunk_id, vector), nearest first, ranked again by
    cosine to the query moved towards the mean of its best rows' best chunks (see
    FEEDBACK_SHARE), q / |q| + FEEDBACK_WEIGHT * mean, keeping their scores. Rows near the
    query's best rows rise, though they share less with the query's few words: the query takes
    on the best rows' words (or meaning). Nothing moves when even the best is not similar."""
    if not chunks or chunks[0][1] <= 0:
        return chunks
    units = np.array([c[3] for c in chunks], dtype=np.float32)
    units /= np.maximum(np.linalg.norm(units, axis=1, keepdims=True), 1e-12)
    best: dict[str, int] = {}
    for i, chunk in enumerate(chunks):
        if len(best) == FEEDBACK_ROWS or chunk[1] < FEEDBACK_SHARE * chunks[0][1]:
            break
        best.setdefault(chunk[0], i)
    query = np.asarray(vector, dtype=np.float32)
    moved = query / max(float(np.linalg.norm(query)), 1e-12)
    moved = moved + FEEDBACK_WEIGHT * units[list(best.values())].mean(axis=0)
    scores = units @ (moved / max(float(np.linalg.norm(moved)), 1e-12))
    order = np.argsort(-scores, kind="stable")
    return [chunks[i] for i in order]


def _hit(key: str, score: float, text: str, metadata: dict | None) -> Hit:
    return (key, float(score), text, metadata)


def _best_per_row(rows: Iterable) -> dict[str, Hit]:
    best: dict[str, Hit] = {}
    for row in rows:
        best.setdefault(row[0], _hit(*row))
    return best
