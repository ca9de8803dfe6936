"""The one error every data source raises for a record it cannot turn into a sample."""

from __future__ import annotations


class BadSample(ValueError):
    """A record that cannot become a sample: ``where`` names the file and the record."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class BadSampleWarning(UserWarning):
    """Issued for each record skipped under ``on_bad_data="skip"``."""
