"""CI gates that check the generated templates against AWS's own rules (no AWS calls)."""
