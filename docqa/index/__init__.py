"""Indexes on disk: reading documents into chunks (:mod:`.ingest`) and storing them (:mod:`.store`)."""
