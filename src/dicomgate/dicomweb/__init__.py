"""DICOMweb: the STOW-RS Store Transaction (PS3.18 §10.5) over the ingest pipeline."""
