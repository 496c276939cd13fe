"""SMTP listener: aiosmtpd protocol engine, thin hooks that call the rule engine."""
