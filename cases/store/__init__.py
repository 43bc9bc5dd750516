"""The case store: database and base models (organisations, pupils, cases, documents, uploads),
content-addressed files, the audit log, background jobs, numbering and the services registry."""
