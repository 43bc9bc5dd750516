"""整班移交 (whole-class handover, DOMAIN §4): plans, rosters, 交接表 documents, registrations and
the county check."""
