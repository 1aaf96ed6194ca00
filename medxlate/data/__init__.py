"""Dataset layout, preparation (hospital export -> dataset), verification, fingerprint and loaders.

Map:
    dataset.py       ``dataset.json`` + ``cases/``: read_dataset, write_dataset_index
    prepare.py       ``prepare_dataset``/``run_prepare``: the orchestration (inputs -> cases -> index)
    inputs.py        what prepare reads: NIfTI manifest, DICOM tree (scan + pairing), id-map rows
    folders.py       case folders of role-named volumes (SynthRAD layout); the manifest a folder needs
    pairing.py       source/target series pairing rules per patient
    build.py         one case's volumes onto the source grid: clip, resample, register, body mask
    registration.py  SimpleITK rigid registration (Mattes MI) and resampling
    casestore.py     case folders: fingerprints, opaque ids, atomic writes, skip unchanged
    splits.py        train/val/test by patient, seeded
    privacy.py       redaction of identifiers in messages; the id map (outside the dataset)
    verify.py        ``verify_dataset``: every problem at once
    fingerprint.py   ``fingerprint_dataset``/``load_fingerprint``: intensity and spacing statistics
    bodymask.py, volumes.py, slices.py   body masks; training-time loading and slicing
    ct_source.py     X-ray -> CT's CT cases (CtCase, CtSource): a prepared dataset's CT role or, via
    ct_folder.py     a folder of CT volumes / DICOM tree (opaque ids, seeded content split, masks from the CT)
    drr.py           X-ray -> CT: CTs on the model grid cached on disk, DRR training items
"""

from medxlate.data.dataset import Case, Dataset, read_dataset, write_dataset_index
from medxlate.data.fingerprint import fingerprint_dataset, fingerprint_hash, load_fingerprint
from medxlate.data.prepare import PrepareReport, prepare_dataset, run_prepare
from medxlate.data.verify import Problem, verify_dataset

__all__ = [
    "Case",
    "Dataset",
    "PrepareReport",
    "Problem",
    "fingerprint_dataset",
    "fingerprint_hash",
    "load_fingerprint",
    "prepare_dataset",
    "read_dataset",
    "run_prepare",
    "verify_dataset",
    "write_dataset_index",
]
