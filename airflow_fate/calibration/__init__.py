"""Measuring catalog models on this machine's devices (``airflow-fate calibrate``).

The cost model predicts from the catalog's rates and the cluster's bandwidths; those
figures are only as good as the hardware they were measured on. This package drives the
real device worker (`session`), times loads from each storage tier, prefill and decode
(`measure`, `page_cache`), and merges the measured rates into a ``models.yaml``
(`catalog_update`). Nothing here imports torch: the worker process does the work.
"""
