"""Returned documents (DOMAIN §5.6): every returned file stored first, read, checked by a person
where needed and applied to its case."""
