//! `signpost-operator`: the Kubernetes controller of `Destination` resources (SAP's transparent
//! proxy's, PROXY.md §2). For each resource it checks the referenced destination through the
//! Destination service (with the typed `signpost-client`, over HTTP only), sets the `Available`
//! condition with SAP's reasons, makes `http://<name>.<namespace>` reach the proxy, and writes the
//! proxy's routes and service keys into a ConfigMap and a Secret of its own namespace, so that the
//! proxy needs no access to the Kubernetes API. It never touches a database.
#![forbid(unsafe_code)]

pub mod crd;
