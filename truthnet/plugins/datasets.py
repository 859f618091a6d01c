"""Built-in dataset layouts: ``folder``, ``celebdf``, ``faceforensics``, ``dfdc``."""

from __future__ import annotations

from ..datasets.layouts import CelebDFLayout, DFDCLayout, FaceForensicsLayout, FolderLayout
from .hookspecs import hookimpl


@hookimpl
def truthnet_register_dataset_layouts(register):
    register("folder", FolderLayout, "real/ and fake/ folders at any depth")
    register("celebdf", CelebDFLayout, "Celeb-DF v1/v2 with List_of_testing_videos.txt (1 = real there)")
    register("faceforensics", FaceForensicsLayout, "FaceForensics++ original/manipulated sequences, official splits")
    register("dfdc", DFDCLayout, "DFDC folders with metadata.json")
