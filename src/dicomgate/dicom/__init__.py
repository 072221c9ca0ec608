"""Pure DICOM dataset work: no web, no DB (runs in workers and the CLI)."""
