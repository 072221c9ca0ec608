"""One SOP Instance UID, one patient: the identity rules every ingest path enforces."""
