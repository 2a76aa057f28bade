"""DICOM adapters: the C-STORE SCP (DICOM in)."""

from pyheart.adapters.dicom.scp import DicomStoreScp

__all__ = ["DicomStoreScp"]
