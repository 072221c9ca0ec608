"""Pure codec work over bytes and arrays: transcode, preview, and the worker pool wrapper.

Nothing here imports FastAPI, httpx or SQLAlchemy: these functions run in worker processes and
in the CLI alike.
"""
