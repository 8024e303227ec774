"""One case, one staged pipeline: find cases, read them, run the stages a command picks, write outputs.

- :mod:`~paraspinal.pipeline.case` and :mod:`~paraspinal.pipeline.discovery`: the :class:`Case` (input files by
  role) and how cases are found (file names, cases CSVs).
- :mod:`~paraspinal.pipeline.read`: one way to read a case (DICOM roles included).
- :mod:`~paraspinal.pipeline.stages`: the stages and :func:`run_stages`; :mod:`~paraspinal.pipeline.levels`:
  which level source wins.
- :mod:`~paraspinal.pipeline.case_run`: one case of a ``run`` into its folder; the cohort driver is
  :func:`paraspinal.batch.run_batch`.

Nothing heavy is imported here; import the module you need.
"""
