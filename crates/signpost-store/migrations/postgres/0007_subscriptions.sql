-- Subscriptions: a subscriber subaccount subscribed to a provider's service instance (SaaS
-- multitenancy). A subscription's own destinations, fragments and certificates (the subscription
-- level) are entities on level 'instance' owned by '<instance id>/<subscriber subaccount id>'.
CREATE TABLE subscriptions (
    instance_id   TEXT COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    subaccount_id TEXT COLLATE "C" NOT NULL REFERENCES subaccounts (id),
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (instance_id, subaccount_id)
);
CREATE INDEX subscriptions_subaccount ON subscriptions (subaccount_id);
-- Tenant tokens are asked for at <subdomain>.<uaadomain>: subaccounts are found by subdomain.
CREATE INDEX subaccounts_subdomain ON subaccounts (subdomain);
