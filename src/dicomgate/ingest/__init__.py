"""Uploads: single files and whole folders, stamped, transcoded and stored in Orthanc."""
