"""台账 (ledgers, DOMAIN §6): rows and aggregates as of any date, filed snapshots, quarterly
figures, indicators and their exports."""
