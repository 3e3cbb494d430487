-- The subaccounts' SAML trust key pairs: slot 'active' signs, 'passive' is prepared for rotation.
CREATE TABLE saml_keys (
    subaccount_id TEXT NOT NULL,
    slot          TEXT NOT NULL,
    private_key   BLOB NOT NULL,
    certificate   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (subaccount_id, slot)
);
