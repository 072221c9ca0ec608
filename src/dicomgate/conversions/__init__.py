"""Batch conversion of instances already stored in Orthanc to HTJ2K (issue 5)."""
