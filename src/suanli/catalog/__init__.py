"""The accelerator catalog: models, their facts and sources, and the normalized compute unit."""

from suanli.catalog.accelerator import AcceleratorModel, Catalog, load_catalog

__all__ = ["AcceleratorModel", "Catalog", "load_catalog"]
