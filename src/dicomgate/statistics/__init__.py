"""Storage statistics: Orthanc's counts and size, and what dicomgate's transcoding saved."""
