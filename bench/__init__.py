"""`make bench`: the gateway with every rule on vs. Postfix + OpenDKIM vs. the loopback ceiling."""
