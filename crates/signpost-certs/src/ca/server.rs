//! The HTTPS listener's own certificate: issued by the CA for the host names and addresses the
//! service is reached at (`signpost serve --tls-listen` without `--tls-cert`/`--tls-key`), and
//! when it is due for renewal.

#[allow(clippy::wildcard_imports)]
use super::*;

/// How long a server certificate of [`CertificateAuthority::issue_server_certificate`] is
/// valid (less when the CA expires before).
pub const SERVER_CERTIFICATE_VALIDITY: Duration = Duration::days(90);

/// A server certificate is renewed once less than this is left of it
/// ([`server_certificate_renewal_due`]).
pub const SERVER_CERTIFICATE_RENEW_BEFORE: Duration = Duration::days(30);

/// Longest DNS name accepted (RFC 1035, without the trailing dot).
const MAX_DNS_NAME_LEN: usize = 253;

/// A name a server certificate is valid for: a `subjectAltName` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectAltName {
    /// A DNS name, lower case, without a trailing dot.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl SubjectAltName {
    /// The name of a host as a URL writes it: an IP literal (IPv6 with or without brackets) is
    /// an IP address, anything else must be a DNS name (letters, digits and hyphens in labels of
    /// at most 63, 253 in all; one label is allowed, e.g. a Kubernetes service name). No port.
    pub fn from_host(host: &str) -> Result<Self, CaError> {
        let invalid = || CaError::InvalidServerName {
            name: host.to_owned(),
        };
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SubjectAltName::Ip(ip));
        }
        if bare.len() != host.len() {
            return Err(invalid());
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        // An all-numeric last label is a mistyped address, not a host name (as "1.2.3").
        let tld_numeric = name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
        if name.is_empty()
            || name.len() > MAX_DNS_NAME_LEN
            || !name.split('.').all(label_ok)
            || tld_numeric
        {
            return Err(invalid());
        }
        Ok(SubjectAltName::Dns(name))
    }

    /// The name alone (`localhost`, `127.0.0.1`, `::1`): the common name of a certificate.
    pub fn name(&self) -> String {
        match self {
            SubjectAltName::Dns(name) => name.clone(),
            SubjectAltName::Ip(ip) => ip.to_string(),
        }
    }

    fn to_san(&self) -> Result<SanType, CaError> {
        match self {
            SubjectAltName::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| CaError::InvalidServerName { name: name.clone() }),
            SubjectAltName::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        }
    }
}

impl fmt::Display for SubjectAltName {
    /// As openssl prints them: `DNS:localhost`, `IP:127.0.0.1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectAltName::Dns(name) => write!(f, "DNS:{name}"),
            SubjectAltName::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// A server certificate and its key (for the TLS listener only; Signpost does not store it).
pub struct ServerCertificate {
    /// The certificate, DER. It is the whole chain a TLS server sends: the CA certificate is
    /// what clients trust.
    pub certificate_der: Vec<u8>,
    /// Its private key (ECDSA P-256), PKCS#8 DER.
    pub private_key_pkcs8_der: SecretSlice<u8>,
    /// Its `notBefore` ([`CLOCK_SKEW_ALLOWANCE`] before the moment of issue).
    pub not_before: OffsetDateTime,
    /// Its `notAfter`: [`SERVER_CERTIFICATE_VALIDITY`] after the moment of issue, or the CA's
    /// `notAfter` if that comes first.
    pub not_after: OffsetDateTime,
    /// Its serial number, upper-case hex.
    pub serial_hex: String,
}

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("serial_hex", &self.serial_hex)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Issues a TLS server certificate for `names` at `now`, with a new ECDSA P-256 key.
    ///
    /// The subject is `CN=<first name>`; extensions: `basicConstraints CA:false`,
    /// `keyUsage digitalSignature`, `extendedKeyUsage serverAuth`, subject and authority key
    /// identifiers, and `subjectAltName` with every name (duplicates once), DNS names as DNS
    /// names and addresses as IP addresses. Valid for [`SERVER_CERTIFICATE_VALIDITY`], cut to the
    /// CA's own end; an error when the CA is not valid at `now`.
    pub fn issue_server_certificate(
        &self,
        names: &[SubjectAltName],
        now: OffsetDateTime,
    ) -> Result<ServerCertificate, CaError> {
        let first = names.first().ok_or(CaError::NoServerNames)?;
        let (not_before, start) = start_times(now)?;
        if start < self.not_before {
            return Err(CaError::CaNotYetValid {
                not_before: rfc3339(self.not_before),
            });
        }
        let wanted = start
            .checked_add(SERVER_CERTIFICATE_VALIDITY)
            .ok_or(CaError::TimeOutOfRange)?;
        let not_after = wanted.min(self.not_after);
        if not_after <= start {
            return Err(CaError::CaExpiresTooSoon {
                ca_not_after: rfc3339(self.not_after),
                requested_not_after: rfc3339(wanted),
            });
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|_| {
            CaError::KeyGeneration {
                kind: "EC P-256".to_owned(),
            }
        })?;
        let serial = Serial::random();

        let mut params = leaf_params(
            &first.name(),
            ExtendedKeyUsagePurpose::ServerAuth,
            not_before,
            not_after,
            &serial,
        );
        for (i, name) in names.iter().enumerate() {
            if !names[..i].contains(name) {
                params.subject_alt_names.push(name.to_san()?);
            }
        }
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(signing_error)?;
        Ok(ServerCertificate {
            certificate_der: cert.der().to_vec(),
            private_key_pkcs8_der: SecretSlice::from(key.serialized_der().to_vec()),
            not_before,
            not_after,
            serial_hex: serial.to_hex(),
        })
    }
}

/// Whether a server certificate that ends at `not_after` is due for renewal at `now`: once less
/// than [`SERVER_CERTIFICATE_RENEW_BEFORE`] is left (and always once it has expired).
pub fn server_certificate_renewal_due(not_after: OffsetDateTime, now: OffsetDateTime) -> bool {
    match not_after.checked_sub(SERVER_CERTIFICATE_RENEW_BEFORE) {
        Some(due_at) => now >= due_at,
        None => true,
    }
}
