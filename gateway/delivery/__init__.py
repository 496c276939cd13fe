"""Delivery: what happens after the chain accepts — transform, sign, forward in lockstep."""
