-- The subaccounts' SAML trust key pairs: slot 'active' signs, 'passive' is prepared for rotation.
CREATE TABLE saml_keys (
    subaccount_id TEXT COLLATE "C" NOT NULL,
    slot          TEXT COLLATE "C" NOT NULL,
    private_key   BYTEA NOT NULL,
    certificate   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (subaccount_id, slot)
);
