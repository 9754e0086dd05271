"""Publishing: reports for finance, written to the published zone once the gate has passed."""
