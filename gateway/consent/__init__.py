"""Pure consent logic: address normalisation, consent precedence, retention and bulk import."""
