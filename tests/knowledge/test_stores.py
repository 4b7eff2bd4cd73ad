"""The vector store adapters: the embedded store, and PostgreSQL + pgvector on a real server (pgserver)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.types import FilterOperator, VectorStoreQuery

from app.settings import get_settings
from knowledge.index import build_index, read_manifest
from knowledge.retrieval import KnowledgeBase
from knowledge.stores import (
    EmbeddedStoreAdapter,
    NumpyVectorStore,
    PgVectorStoreAdapter,
    StoreConfig,
    StoreConfigError,
    tenant_filter,
)

from .conftest import HashingEmbedding

QUESTIONS = [
    ("How many days do I have to ask for a refund?", "acme"),
    ("tracking link for my parcel", "acme"),
    ("express delivery next business day", "acme"),
    ("globex zebra refund code", "globex"),
    ("refund", "globex"),
]


def node(node_id: str, doc_id: str, tenant: str, text: str) -> TextNode:
    embed = HashingEmbedding()
    result = TextNode(
        id_=node_id, text=text, metadata={"doc_id": doc_id, "tenant": tenant}, embedding=embed._vector(text)
    )
    result.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
    return result


NODES = [
    node("a1", "doc-a", "acme", "refunds within thirty days"),
    node("a2", "doc-a", "acme", "refunds paid to the original card"),
    node("b1", "doc-b", "acme", "delivery takes three days"),
    node("g1", "doc-g", "globex", "globex refunds within fourteen days"),
]


def ask(store, text: str, tenant: str, k: int = 10) -> list[str]:
    vector = HashingEmbedding()._vector(text)
    result = store.query(
        VectorStoreQuery(query_embedding=vector, similarity_top_k=k, filters=tenant_filter(tenant))
    )
    return list(result.ids or [])


# --- the embedded store ---------------------------------------------------------------------------


def test_the_embedded_store_filters_by_tenant_and_ranks_by_cosine() -> None:
    store = NumpyVectorStore()
    store.add(NODES)
    assert ask(store, "refunds thirty days", "acme")[0] == "a1"
    assert set(ask(store, "refunds", "acme")) == {"a1", "a2", "b1"}
    assert ask(store, "refunds", "globex") == ["g1"]
    assert ask(store, "refunds", "initech") == []
    both = MetadataFilters(
        filters=[MetadataFilter(key="tenant", value=["acme", "globex"], operator=FilterOperator.IN)]
    )
    vector = HashingEmbedding()._vector("refunds")
    assert (
        len(store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=9, filters=both)).ids) == 4
    )


def test_the_embedded_store_upserts_deletes_and_persists(tmp_path: Path) -> None:
    adapter = EmbeddedStoreAdapter()
    adapter.publish(NODES, tmp_path)
    adapter.upsert_document("doc-a", [node("a3", "doc-a", "acme", "refunds in store credit")])
    assert set(ask(adapter.store, "refunds", "acme")) == {"a3", "b1"}
    adapter.delete_document("doc-b")
    assert ask(adapter.store, "refunds", "acme") == ["a3"]
    reread = NumpyVectorStore.from_folder(tmp_path)  # what publish wrote, before the changes
    assert set(ask(reread, "refunds", "acme")) == {"a1", "a2", "b1"}
    adapter.store.add([node("a3", "doc-a", "acme", "refunds in store credit, again")])  # same id: replaced
    assert len(adapter.store) == 2


def test_store_configuration_comes_from_the_environment_then_params() -> None:
    assert StoreConfig.resolve({}, environ={}) == StoreConfig()
    config = StoreConfig.resolve(
        {"vector_store": "embedded", "pgvector_table": "kb"},
        environ={
            "SWITCHBOARD_VECTOR_STORE": "pgvector",
            "SWITCHBOARD_PGVECTOR_URL": "postgresql://u:secret@h/db",
        },
    )
    assert (config.kind, config.table) == ("pgvector", "kb")
    assert config.describe() == {"kind": "pgvector", "table": "kb", "url": "postgresql://u:***@h/db"}
    with pytest.raises(StoreConfigError, match="SWITCHBOARD_PGVECTOR_URL"):
        StoreConfig.resolve({"vector_store": "pgvector"}, environ={})
    with pytest.raises(StoreConfigError, match="unknown vector store 'faiss'"):
        StoreConfig.resolve({}, environ={"SWITCHBOARD_VECTOR_STORE": "faiss"})
    with pytest.raises(StoreConfigError, match="invalid pgvector table name"):
        StoreConfig(kind="embedded", table="drop table; --")


def test_without_an_explicit_environ_the_settings_decide_dot_env_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SWITCHBOARD_VECTOR_STORE", "SWITCHBOARD_PGVECTOR_URL", "SWITCHBOARD_PGVECTOR_TABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "SWITCHBOARD_VECTOR_STORE=pgvector\nSWITCHBOARD_PGVECTOR_URL=postgresql://u:secret@h/db\n"
    )
    config = StoreConfig.resolve({"pgvector_table": "kb"})
    assert (config.kind, config.url, config.table) == ("pgvector", "postgresql://u:secret@h/db", "kb")
    monkeypatch.setenv("SWITCHBOARD_PGVECTOR_TABLE", "from_env")  # the environment beats .env and params
    get_settings.cache_clear()
    assert StoreConfig.resolve({"pgvector_table": "kb"}).table == "from_env"


# --- PostgreSQL + pgvector (a real server from the pgserver package) -----------------------------


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A PostgreSQL 16 server with the vector extension, for this module's tests.

    Its data folder is a fresh ``/tmp`` folder, not pytest's: pgserver runs PostgreSQL as its own user,
    which cannot enter pytest's private (0700) temporary root when the tests run as root.
    """
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
    try:
        server = pgserver.get_server(folder, cleanup_mode="stop")
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        yield server.get_uri()
        server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgVectorStoreAdapter]:
    adapter = PgVectorStoreAdapter(pg_url, table=f"t_{uuid.uuid4().hex[:8]}", embed_dim=128)
    yield adapter
    adapter.drop()
    adapter.close()


def test_pgvector_filters_by_tenant(pg: PgVectorStoreAdapter, tmp_path: Path) -> None:
    pg.publish(NODES, tmp_path)
    assert pg.count() == 4
    assert ask(pg.store, "refunds thirty days", "acme")[0] == "a1"
    assert set(ask(pg.store, "refunds", "acme")) == {"a1", "a2", "b1"}
    assert ask(pg.store, "refunds", "globex") == ["g1"]
    assert ask(pg.store, "refunds", "initech") == []


def test_pgvector_upserts_and_deletes_by_document_id(pg: PgVectorStoreAdapter, tmp_path: Path) -> None:
    pg.publish(NODES, tmp_path)
    pg.upsert_document("doc-a", [node("a3", "doc-a", "acme", "refunds in store credit")])
    assert set(ask(pg.store, "refunds", "acme")) == {"a3", "b1"}
    pg.delete_document("doc-b")
    assert ask(pg.store, "refunds", "acme") == ["a3"]
    assert ask(pg.store, "refunds", "globex") == ["g1"]
    assert pg.count() == 2


def test_pgvector_publish_swaps_the_whole_table_atomically(pg: PgVectorStoreAdapter, tmp_path: Path) -> None:
    pg.publish(NODES, tmp_path)
    pg.publish([node("n1", "doc-n", "acme", "a brand new refunds article")], tmp_path)
    assert pg.count() == 1 and ask(pg.store, "refunds", "acme") == ["n1"]

    class Broken(TextNode):
        def get_embedding(self) -> list[float]:
            raise RuntimeError("no vector")

    with pytest.raises(RuntimeError):
        pg.publish([*NODES, Broken(id_="x", text="x", metadata={"tenant": "acme"})], tmp_path)
    assert pg.count() == 1 and ask(pg.store, "refunds", "acme") == ["n1"]  # the old content is still served
    from sqlalchemy import inspect

    leftovers = [
        t for t in inspect(pg._engine).get_table_names() if pg.table in t and t != f"data_{pg.table}"
    ]
    assert leftovers == []  # no staging or retired tables left behind


def test_pgvector_returns_the_same_results_as_the_embedded_store(
    pg_url: str, sources: Path, embed_model: HashingEmbedding
) -> None:
    embedded = build_index(sources, sources.parent / "embedded", 256, 32, embed_model, show_progress=False)
    table = f"kb_{uuid.uuid4().hex[:8]}"
    config = StoreConfig(kind="pgvector", url=pg_url, table=table)
    postgres = build_index(
        sources, sources.parent / "pg", 256, 32, embed_model, show_progress=False, store=config
    )
    assert postgres.kb_version == embedded.kb_version
    assert read_manifest(sources.parent / "pg")["vector_store"]["table"] == table
    assert not (sources.parent / "pg" / "vectors.npy").exists()
    local = KnowledgeBase.load(sources.parent / "embedded", embed_model=embed_model)
    remote = KnowledgeBase.load(sources.parent / "pg", embed_model=embed_model, store=config)
    try:
        for question, tenant in QUESTIONS:
            for retriever in ("dense", "hybrid"):
                a = local.retrieve(question, tenant, top_k=5, retriever=retriever)
                b = remote.retrieve(question, tenant, top_k=5, retriever=retriever)
                assert [h.chunk_id for h in a] == [h.chunk_id for h in b]
                assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
                assert all(h.tenant == tenant for h in b)
        answer = remote.answer(QUESTIONS[0][0], "acme", top_k=3, cut_off=0.0)
        assert answer.answered and answer.sources[0]["doc_id"] == "acme-refunds"
    finally:
        local.close()
        remote.close()
        PgVectorStoreAdapter(pg_url, table=table).drop()


def test_an_index_in_pgvector_needs_the_store_configured(pg_url: str, sources: Path, embed_model) -> None:
    table = f"kb_{uuid.uuid4().hex[:8]}"
    config = StoreConfig(kind="pgvector", url=pg_url, table=table)
    build_index(sources, sources.parent / "pg", 256, 32, embed_model, show_progress=False, store=config)
    with pytest.raises(ValueError, match="SWITCHBOARD_PGVECTOR_URL"):
        KnowledgeBase.load(sources.parent / "pg", embed_model=embed_model, store=StoreConfig())
    PgVectorStoreAdapter(pg_url, table=table).drop()
