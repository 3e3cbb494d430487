//! SAML 2.0 assertions, built and signed (being written).
