"""Switchboard knowledge layer: Markdown documents -> chunked, embedded index -> tenant-scoped answers.

Modules (import them directly; this package imports nothing heavy):

- ``knowledge.documents``: read ``sources.yml`` and the Markdown files it points to.
- ``knowledge.embeddings``: the local MiniLM embedding (torch, ONNX or int8 ONNX) and llama-index settings.
- ``knowledge.cache``: the embedding cache that makes ingestion incremental.
- ``knowledge.stores``: vector stores: the embedded default on disk, PostgreSQL + pgvector.
- ``knowledge.settings``: the ``SWITCHBOARD_*`` settings the knowledge modules read (``app.settings``).
- ``knowledge.index``: the ingestion pipeline; build and atomically publish the index.
- ``knowledge.retrievers``: dense, BM25 and hybrid (fused) retrievers, all tenant-filtered; ``Hit``.
- ``knowledge.confidence``: the answerability features and models; ``knowledge.calibration``: their fit on
  the dev questions, with a cross-validated AUC.
- ``knowledge.extractive``: the extractive answer (best sentences of the best chunk, with its source).
- ``knowledge.retrieval``: ``KnowledgeBase``: load an index, retrieve, answer or say "I don't know".
- ``knowledge.llm_prompts`` / ``knowledge.grounding``: the versioned prompts of LLM answers (files in
  ``prompts/``) and the grounding check of the replies; the LLM calls are ``app.llm``'s.
- ``knowledge.gold``: the gold and dev question files.
- ``knowledge.metrics``: hit@k, MRR, nDCG, recall, "I don't know" precision/recall, AUC and PR curve.
- ``knowledge.evaluation`` / ``knowledge.ragas_eval``: the gold-set evaluation and the ragas metrics.
- ``knowledge.beir_format`` / ``beir_export`` / ``beir_synthetic`` / ``beir_eval``: BEIR-format sets (read
  and write, our gold set exported, a generated one) and scoring the retrievers on them;
  ``python -m knowledge.beir`` is their command line.
"""
