//! A real OAuth2 server on loopback for token-flow tests (being written).
