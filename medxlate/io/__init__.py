"""Image I/O: load NIfTI/NRRD/MetaImage/DICOM as RAS ``MetaTensor``; save NIfTI; provenance sidecars.

Map:
    load.py          ``load_volume``: dispatch by path type, NIfTI via MONAI ``LoadImage``
    dicom.py         DICOM series discovery, slice sorting along the normal, rescale, affine (pydicom)
    sitk_formats.py  NRRD/MetaImage via SimpleITK, LPS -> RAS
    save.py          ``save_volume`` (NIfTI, sform/qform, descrip), ``write_provenance``
    atomic.py        temporary file + ``os.replace``
"""

from __future__ import annotations

from medxlate.io.load import load_volume
from medxlate.io.save import save_volume, write_provenance

__all__ = ["load_volume", "save_volume", "write_provenance"]
