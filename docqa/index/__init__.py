"""Indexes on disk: reading documents into chunks (:mod:`.ingest`), versions made of immutable segments shared by
hard link (:mod:`.versions`, :mod:`.segments`, :mod:`.writer`), a verified version for readers (:mod:`.store`,
:mod:`.integrity`), and where the vectors live (:mod:`.vector_stores`: FAISS per segment, or Milvus)."""
