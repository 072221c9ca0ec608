"""dicomgate: an async gateway in front of Orthanc that stores DICOM losslessly as HTJ2K."""

__version__ = "0.1.0"
