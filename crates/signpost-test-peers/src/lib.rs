//! The real peers of Signpost's tests, with nothing of Signpost in them: a throwaway PostgreSQL
//! ([`pg`]), nginx ([`nginx`]), the OAuth2 server from the npm registry ([`oauth_peer`], installed by
//! [`npm`]), the signxml verifier ([`signxml`]), a test PKI made with openssl and keytool
//! ([`pki`]), slow clients for the server limits ([`slow`]), the real `helm`, `kubectl` and
//! Kubernetes API server ([`kube`]), and the proxy's upstream servers ([`peers`]). The
//! `TestApp` harness that runs Signpost itself is `signpost-test-utils`, which
//! re-exports these modules.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

pub mod kube;
pub mod nginx;
pub mod npm;
pub mod oauth_peer;
pub mod peers;
pub mod pg;
pub mod pki;
pub mod signxml;
pub mod slow;
