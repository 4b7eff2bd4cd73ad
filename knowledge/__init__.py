"""Switchboard knowledge layer: Markdown documents -> chunked, embedded index -> tenant-scoped answers.

Modules (import them directly; this package imports nothing heavy):

- ``knowledge.documents``: read ``sources.yml`` and the Markdown files it points to.
- ``knowledge.embeddings``: the local MiniLM embedding (torch, ONNX or int8 ONNX) and llama-index settings.
- ``knowledge.cache``: the embedding cache that makes ingestion incremental.
- ``knowledge.stores``: vector stores: the embedded default on disk, PostgreSQL + pgvector.
- ``knowledge.index``: the ingestion pipeline; build and atomically publish the index.
- ``knowledge.retrievers``: dense, BM25 and hybrid (fused) retrievers, all tenant-filtered.
- ``knowledge.confidence`` / ``knowledge.calibration``: the answerability score and its fit on dev questions.
- ``knowledge.retrieval``: ``KnowledgeBase``: load an index, retrieve, answer (extractive or LLM) or say
  "I don't know".
- ``knowledge.llm``: the LLM answerer (OpenAI-compatible endpoint, prompt files in ``prompts/``, validation).
- ``knowledge.evaluation`` / ``knowledge.ragas_eval``: retrieval, "I don't know" and ragas metrics.
- ``knowledge.beir``: the BEIR-format evaluation path (``python -m knowledge.beir``).
"""
