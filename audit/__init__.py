"""The audit trail: who changed what, when, through which door (README, Audit trail)."""
