-- X.509 bindings: the binding's certificate chain (PEM, public) and the SHA-256 fingerprint of its
-- leaf, which authenticates mTLS token requests. A generated binding keeps its private key in
-- `secret` (encrypted) so that a repeated bind can answer with the same credentials.
ALTER TABLE bindings ADD COLUMN certificate TEXT;
ALTER TABLE bindings ADD COLUMN certificate_sha256 TEXT COLLATE "C";
CREATE INDEX bindings_certificate ON bindings (certificate_sha256);
