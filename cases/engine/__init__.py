"""The case engine: the workflow state machine, working-day deadlines and calendars, region
profiles, closure rules, attendance import and the case operations that tie them to the store."""
