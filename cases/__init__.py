"""The case side of Baoxue: the store and every area working on it, one package per area.

``store`` (database, base models, files, audit, jobs, numbering, services) is the floor; above
it ``engine`` (workflow, deadlines, profiles, closure, attendance), ``documents`` (issuing,
prefill, batches), ``handover`` (整班移交), ``ledgers`` (台账, indicators) and ``returns`` (every
returned file, read and applied to its case). Each area keeps its tables in its own ``models``.
"""
