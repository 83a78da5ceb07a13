"""The alliance's hub: repos of models and datasets, stored as content-addressed blobs."""
