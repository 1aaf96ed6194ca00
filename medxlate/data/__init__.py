"""Dataset layout, preparation and loaders."""

from medxlate.data.dataset import Case, Dataset, read_dataset, write_dataset_index

__all__ = ["Case", "Dataset", "read_dataset", "write_dataset_index"]
