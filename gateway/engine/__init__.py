"""Rule engine: checks (code) registered by name, rules (data) from packs, a deciding chain."""
