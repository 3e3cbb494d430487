//! The outbound side of Signpost: every authentication type's token flow against a destination's
//! token service, the single-flight token cache, verification of user tokens, and the SAML 2.0
//! assertions that SAML flows need. No HTTP-server code; must not depend on the store or the API.

pub mod saml;
