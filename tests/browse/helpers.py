"""Helpers for the browse tests."""

from __future__ import annotations

from collections.abc import Callable

from pydicom.dataset import Dataset

Store = Callable[[Dataset], dict[str, str]]
