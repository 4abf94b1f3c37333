"""Alert e-mails from findings: grouping, de-duplication, silences, digests (issue 7)."""
