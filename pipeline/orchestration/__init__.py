"""Running the stages: picking entries for a task, Dask extraction and ablations, the demo."""
