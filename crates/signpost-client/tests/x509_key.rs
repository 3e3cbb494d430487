//! `DestinationClient` with X.509 service keys: the broker makes the binding with
//! `{"xsuaa": {"credential-type": "x509"}}`, the client presents the key's certificate over mTLS to
//! Signpost's HTTPS listener (`certurl`) and trusts that listener's CA through
//! `ClientOptions::extra_roots_pem`. `TestApp` has no HTTPS listener, so this file boots the real
//! Signpost core and router on an HTTP and an HTTPS listener itself, the way `signpost serve
//! --tls-listen` does.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use secrecy::SecretString;
use serde_json::{json, Value};
use signpost_api::{AppState, BrokerCredentials, PeerCertificate};
use signpost_client::{ClientOptions, DestinationClient, Error, FindRequest, ServiceKey, Side};
use signpost_core::{CoreConfig, OAuthConfig, Signpost, CATALOG_PLAN_ID, CATALOG_SERVICE_ID};
use signpost_store::{CachedStore, MasterKey, SqliteStore, Store};
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{self, DigitallySignedStruct, DistinguishedName, SignatureScheme};

const USER: &str = "broker";
const PASSWORD: &str = "broker-password";

/// Asks for a client certificate, requires none, accepts any whose key signed the handshake (as
/// Signpost's HTTPS listener does: the token service decides by fingerprint).
#[derive(Debug)]
struct AnyClientCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A certificate with its key, in PEM.
struct Pem {
    cert: String,
    key: String,
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
fn server_pki() -> (Pem, Pem) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "signpost-client test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    (
        Pem {
            cert: ca.pem(),
            key: ca_key.serialize_pem(),
        },
        Pem {
            cert: leaf.pem(),
            key: leaf_key.serialize_pem(),
        },
    )
}

/// A self-signed client certificate, as a client would bring its own.
fn client_cert(cn: &str) -> Pem {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Signpost on `http://127.0.0.1:<p>` and `https://127.0.0.1:<q>` (`certurl`).
struct Server {
    http: String,
    ca_pem: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("signpost.db").display());
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&url, &MasterKey::generate(), 1000)
                .await
                .unwrap(),
        );
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_base = format!("http://{}", http.local_addr().unwrap());
        let https_addr: SocketAddr = https.local_addr().unwrap();
        let core = Signpost::new(
            Arc::new(CachedStore::new(store)),
            CoreConfig {
                public_url: http_base.clone(),
                uaadomain: https_addr.to_string(),
                token_lifetime_secs: 3600,
                oauth: OAuthConfig {
                    allow_private_networks: true,
                    ..Default::default()
                },
                cert_url: Some(format!("https://{https_addr}")),
            },
        )
        .await
        .unwrap();
        let app = signpost_api::router(AppState {
            core,
            broker: Arc::new(BrokerCredentials {
                user: USER.into(),
                password: SecretString::from(PASSWORD.to_owned()),
            }),
        });
        let plain = app.clone();
        tokio::spawn(async move { axum::serve(http, plain).await.unwrap() });

        let (ca, leaf) = server_pki();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(Arc::new(AnyClientCertificate(algorithms)))
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = https.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| PeerCertificate(Arc::new(c.as_ref().to_vec())));
                    let app = tower::ServiceExt::map_request(
                        app,
                        move |mut req: hyper::Request<hyper::body::Incoming>| {
                            if let Some(p) = &peer {
                                req.extensions_mut().insert(p.clone());
                            }
                            req
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        Self {
            http: http_base,
            ca_pem: ca.cert,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn broker(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.http))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Broker-API-Version", "2.17")
    }

    async fn provision(&self, instance: &str) {
        let dest = json!({"Name": "d", "Type": "HTTP", "URL": "https://x509.example", "Authentication": "NoAuthentication", "ProxyType": "Internet"});
        let body = signpost_test_utils::provision_body(
            "sub-x509",
            json!({"init_data": {"instance": {"destinations": [dest]}}}),
        );
        let res = self
            .broker(
                reqwest::Method::PUT,
                &format!("/v2/service_instances/{instance}"),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }

    /// The binding's credentials.
    async fn bind(&self, instance: &str, binding: &str, parameters: Value) -> Value {
        let res = self
            .broker(
                reqwest::Method::PUT,
                &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
            )
            .json(&json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID, "parameters": parameters}))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body["credentials"].clone()
    }

    fn options(&self) -> ClientOptions {
        ClientOptions {
            extra_roots_pem: Some(self.ca_pem.clone()),
            ..ClientOptions::default()
        }
    }
}

#[tokio::test]
async fn a_generated_x509_key_gets_its_token_over_mtls() {
    let server = Server::start().await;
    server.provision("i-x509").await;
    let credentials = server
        .bind("i-x509", "k", json!({"xsuaa": {"credential-type": "x509"}}))
        .await;
    let key = ServiceKey::from_json(&credentials).unwrap();
    assert!(key.is_x509());
    assert!(key.clientsecret.is_none());
    assert!(key.certurl.as_deref().unwrap().starts_with("https://"));
    let private = key.key.clone().unwrap();
    let debug = format!("{key:?}");
    assert!(
        !debug.contains(&private) && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );

    let client = DestinationClient::new(key.clone(), server.options()).unwrap();
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
    let found = client.find(&FindRequest::new("d")).await.unwrap();
    assert_eq!(
        found.response.destination_configuration["URL"],
        "https://x509.example"
    );
    client.find(&FindRequest::new("d")).await.unwrap();
    assert_eq!(client.token_fetches(), 1);

    // Without the listener's CA the TLS handshake fails: the token service is unreachable.
    let e = DestinationClient::new(key.clone(), ClientOptions::default())
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Unreachable {
                side: Side::TokenService,
                timeout: false,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains(&private));

    // The secret form with the client id alone is refused (an X.509 binding has no secret).
    let as_secret = ServiceKey {
        credential_type: Some("binding-secret".into()),
        clientsecret: Some("guess".into()),
        ..key
    };
    let e = DestinationClient::new(as_secret, server.options())
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e:?}");
    assert_eq!(e.side(), Some(Side::TokenService));
}

#[tokio::test]
async fn a_self_provided_certificate_needs_its_private_key() {
    let server = Server::start().await;
    server.provision("i-own").await;
    let own = client_cert("my-app");
    let credentials = server
        .bind(
            "i-own",
            "k-own",
            json!({"xsuaa": {"credential-type": "x509", "x509": {"certificate": own.cert}}}),
        )
        .await;
    let key = ServiceKey::from_json(&credentials).unwrap();
    assert!(key.is_x509());
    assert!(key.key.is_none());
    let e = DestinationClient::new(key.clone(), server.options()).unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("with_private_key")),
        "{e:?}"
    );

    let client =
        DestinationClient::new(key.clone().with_private_key(own.key), server.options()).unwrap();
    let found = client.find(&FindRequest::new("d")).await.unwrap();
    assert_eq!(
        found.response.destination_configuration["URL"],
        "https://x509.example"
    );

    // Another certificate than the binding's: the token service says no.
    let stranger = client_cert("stranger");
    let wrong = ServiceKey {
        certificate: Some(stranger.cert),
        ..key
    }
    .with_private_key(stranger.key);
    let e = DestinationClient::new(wrong, server.options())
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::TokenService { status: 401, .. }),
        "{e:?}"
    );
}
