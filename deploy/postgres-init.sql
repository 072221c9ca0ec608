-- Orthanc's index lives in its own database beside dicomgate's.
CREATE DATABASE orthanc OWNER dicomgate;
