//! The certificate authority: its material, issuing and renewing certificates, X.509 binding
//! certificates, verification of client certificates, renewal timing.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Signpost's CA, loaded and ready to sign.
pub struct CertificateAuthority {
    pub(super) certificate_pem: String,
    pub(super) certificate_der: Vec<u8>,
    pub(super) subject_raw: Vec<u8>,
    pub(super) spki_der: Vec<u8>,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    /// The CA as rcgen needs it for issuing (subject DN and key identifier).
    pub(super) issuer: rcgen::Certificate,
    pub(super) key: KeyPair,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a new self-signed CA: subject `O=Signpost, CN=<common_name>` (RFC 4514:
    /// `CN=<common_name>,O=Signpost`), ECDSA P-256,
    /// `basicConstraints CA:true, pathlen:0` (critical), `keyCertSign, cRLSign, digitalSignature`,
    /// valid from `now` (less [`CLOCK_SKEW_ALLOWANCE`]) for [`CA_VALIDITY_YEARS`] years.
    pub fn generate(common_name: &str, now: OffsetDateTime) -> Result<CaMaterial, CaError> {
        let cn = validate_common_name(common_name)?;
        let (not_before, start) = start_times(now)?;
        let not_after = add_months(start, CA_VALIDITY_YEARS * 12).ok_or(CaError::TimeOutOfRange)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|_| {
            CaError::KeyGeneration {
                kind: "EC P-256".to_owned(),
            }
        })?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, CA_ORGANIZATION);
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(Serial::random().as_bytes()));
        let cert = params.self_signed(&key).map_err(signing_error)?;

        Ok(CaMaterial {
            certificate_pem: crate::pem::encode("CERTIFICATE", cert.der()),
            private_key_pem: SecretString::from(crate::pem::encode(
                "PRIVATE KEY",
                key.serialized_der(),
            )),
        })
    }

    /// Loads a CA from its certificate (PEM) and unencrypted PKCS#8 private key (PEM). The
    /// certificate must be a CA (`basicConstraints CA:true`) and the key must be its key.
    pub fn from_pem(certificate_pem: &str, private_key_pem: &str) -> Result<Self, CaError> {
        let (_, certificate_der) =
            crate::pem::read_block(certificate_pem.as_bytes(), &["CERTIFICATE"])
                .map_err(|reason| CaError::InvalidCaCertificate { reason })?;
        let (_, cert) = X509Certificate::from_der(&certificate_der).map_err(|e| {
            CaError::InvalidCaCertificate {
                reason: format!("not an X.509 certificate ({e})"),
            }
        })?;
        if !cert.is_ca() {
            return Err(CaError::InvalidCaCertificate {
                reason: "basicConstraints CA:true is missing".to_owned(),
            });
        }
        let subject_raw = cert.subject().as_raw().to_vec();
        let spki_der = cert.public_key().raw.to_vec();
        let cert_public_key = cert.public_key().subject_public_key.data.to_vec();
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();

        let key = KeyPair::from_pem(private_key_pem).map_err(|_| CaError::InvalidCaKey)?;
        if key.public_key_raw() != cert_public_key.as_slice() {
            return Err(CaError::CaKeyMismatch);
        }
        let params = CertificateParams::from_ca_cert_der(&certificate_der.as_slice().into())
            .map_err(|e| CaError::InvalidCaCertificate {
                reason: e.to_string(),
            })?;
        // Re-signing gives rcgen the issuer it needs (subject DN, key identifier); the result
        // is used for nothing else.
        let issuer = params.self_signed(&key).map_err(signing_error)?;

        Ok(CertificateAuthority {
            certificate_pem: crate::pem::encode("CERTIFICATE", &certificate_der),
            certificate_der,
            subject_raw,
            spki_der,
            not_before,
            not_after,
            issuer,
            key,
        })
    }

    /// The CA certificate, PEM (what `GET /signpost/v1/ca.pem` serves).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The CA certificate's `notBefore`.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// The CA certificate's `notAfter`.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Issues a certificate for `req` at `now` with `serial` (use [`Serial::random`]).
    ///
    /// The subject is `CN=<common_name>`; extensions: `basicConstraints CA:false`,
    /// `keyUsage digitalSignature` (critical), `extendedKeyUsage clientAuth`, subject and
    /// authority key identifiers, and a `subjectAltName` DNS name (or IP address) when the CN is
    /// a host name (or IP address). Validated first, in this order: CN, validity, key size,
    /// CSR vs. format, password; then the CSR is parsed and its signature checked.
    pub fn issue(
        &self,
        req: &GenerateRequest,
        now: OffsetDateTime,
        serial: Serial,
    ) -> Result<Generated, CaError> {
        let cn = validate_common_name(&req.common_name)?;
        req.validity.validate()?;
        if req.csr_pem.is_none() {
            req.key.validate()?;
        }
        let password = match (&req.csr_pem, req.format) {
            (Some(_), OutputFormat::Pkcs12 | OutputFormat::Jks) => {
                return Err(CaError::CsrRequiresPem { format: req.format });
            }
            (_, OutputFormat::Pem) => None,
            (None, format) => Some(require_password(req.password.as_ref(), format)?),
        };
        let (not_before, not_after) = self.window(&req.validity, now)?;

        let (leaf_der, key) = match &req.csr_pem {
            Some(csr) => {
                let public_key = parse_csr(csr)?;
                let der = self.sign_leaf(cn, &public_key, not_before, not_after, &serial)?;
                (der, None)
            }
            None => {
                let key = generate_key(req.key)?;
                let der = self.sign_leaf(cn, &key.pair, not_before, not_after, &serial)?;
                (der, Some(key))
            }
        };

        let certificate_pem = crate::pem::encode("CERTIFICATE", &leaf_der);
        let file_bytes = match (req.format, &key, password) {
            (OutputFormat::Pem, key, _) => {
                let mut pem = certificate_pem.clone();
                pem.push_str(&self.certificate_pem);
                if let Some(key) = key {
                    pem.push_str(&crate::pem::encode(
                        "PRIVATE KEY",
                        key.pair.serialized_der(),
                    ));
                }
                pem.into_bytes()
            }
            (OutputFormat::Pkcs12, Some(key), Some(password)) => write_pkcs12(
                &req.entry_alias(),
                key.pair.serialized_der(),
                &[&leaf_der, &self.certificate_der],
                password,
            )?,
            (OutputFormat::Jks, Some(key), Some(password)) => write_jks(
                &req.entry_alias(),
                key.pair.serialized_der(),
                &[&leaf_der, &self.certificate_der],
                password,
                now,
            )?,
            // Excluded above: keystores always have a generated key and a password.
            (format, _, _) => return Err(CaError::CsrRequiresPem { format }),
        };

        Ok(Generated {
            file_bytes,
            format: req.format,
            certificate_pem,
            not_before,
            not_after,
            serial_hex: serial.to_hex(),
        })
    }

    /// Renews a generated certificate: the same request (CN, validity length, key kind, format,
    /// password) issued again at `now` with a new random serial and a new key. With a CSR the
    /// requester's key is certified again (Signpost cannot make a new key for it).
    pub fn renew(
        &self,
        previous: &GenerateRequest,
        now: OffsetDateTime,
    ) -> Result<Generated, CaError> {
        self.issue(previous, now, Serial::random())
    }

    /// Issues the client certificate of an X.509 binding (XSUAA's generated credential type):
    /// an RSA key of `key_length_bits` and a certificate for `CN=<common_name>` valid for
    /// `validity` (1 day to 1 year), clientAuth. Returns the chain (client, CA) and the key.
    pub fn issue_client_certificate(
        &self,
        common_name: &str,
        key_length_bits: u32,
        validity: Validity,
        now: OffsetDateTime,
    ) -> Result<ClientCertificate, CaError> {
        let cn = validate_common_name(common_name)?;
        validity.validate()?;
        let kind = KeyKind::Rsa {
            bits: key_length_bits,
        };
        kind.validate()?;
        let (not_before, not_after) = self.window(&validity, now)?;
        let key = generate_key(kind)?;
        let serial = Serial::random();
        let der = self.sign_leaf(cn, &key.pair, not_before, not_after, &serial)?;
        let private_key_pem = match &key.rsa {
            Some(rsa) => {
                use rsa::pkcs1::EncodeRsaPrivateKey as _;
                let pem = rsa.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map_err(|_| {
                    CaError::KeyGeneration {
                        kind: kind.describe(),
                    }
                })?;
                SecretString::from(pem.as_str())
            }
            None => {
                SecretString::from(crate::pem::encode("PRIVATE KEY", key.pair.serialized_der()))
            }
        };
        let mut certificate_chain_pem = crate::pem::encode("CERTIFICATE", &der);
        certificate_chain_pem.push_str(&self.certificate_pem);
        Ok(ClientCertificate {
            certificate_chain_pem,
            private_key_pem,
            sha256_fingerprint: crate::sha256_fingerprint(&der),
            certificate_der: der,
            serial_hex: serial.to_hex(),
            not_before,
            not_after,
        })
    }

    /// Whether `presented_der` (a certificate presented on the mTLS listener) was issued by this
    /// CA and is usable for client authentication at `now`: issuer DN is the CA's subject, the
    /// signature verifies with the CA's key, `now` is within its validity, it is not a CA, and
    /// an extended key usage, if present, allows clientAuth.
    pub fn verify_client_certificate(&self, presented_der: &[u8], now: OffsetDateTime) -> bool {
        let Ok((rest, cert)) = X509Certificate::from_der(presented_der) else {
            return false;
        };
        if !rest.is_empty() || cert.issuer().as_raw() != self.subject_raw.as_slice() {
            return false;
        }
        let Ok((_, ca_spki)) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(self.spki_der.as_slice())
        else {
            return false;
        };
        if cert.verify_signature(Some(&ca_spki)).is_err() {
            return false;
        }
        let now = now.to_offset(UtcOffset::UTC);
        let validity = cert.validity();
        if now < validity.not_before.to_datetime() || now > validity.not_after.to_datetime() {
            return false;
        }
        if cert.is_ca() {
            return false;
        }
        match cert.extended_key_usage() {
            Ok(None) => true,
            Ok(Some(eku)) => eku.value.client_auth || eku.value.any,
            Err(_) => false,
        }
    }

    /// `notBefore`/`notAfter` for a certificate of `validity` issued at `now`, checked against
    /// the CA's own validity.
    pub(super) fn window(
        &self,
        validity: &Validity,
        now: OffsetDateTime,
    ) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
        let (not_before, start) = start_times(now)?;
        let not_after = validity.end_from(start)?;
        if start < self.not_before {
            return Err(CaError::CaNotYetValid {
                not_before: rfc3339(self.not_before),
            });
        }
        if not_after > self.not_after {
            return Err(CaError::CaExpiresTooSoon {
                ca_not_after: rfc3339(self.not_after),
                requested_not_after: rfc3339(not_after),
            });
        }
        Ok((not_before, not_after))
    }

    /// Signs a leaf certificate for `public_key`; returns its DER.
    pub(super) fn sign_leaf(
        &self,
        cn: &str,
        public_key: &impl PublicKeyData,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        serial: &Serial,
    ) -> Result<Vec<u8>, CaError> {
        let mut params = leaf_params(
            cn,
            ExtendedKeyUsagePurpose::ClientAuth,
            not_before,
            not_after,
            serial,
        );
        if let Ok(ip) = cn.parse::<IpAddr>() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        } else if looks_like_host_name(cn) {
            if let Ok(name) = cn.to_ascii_lowercase().try_into() {
                params.subject_alt_names.push(SanType::DnsName(name));
            }
        }
        let cert = params
            .signed_by(public_key, &self.issuer, &self.key)
            .map_err(signing_error)?;
        Ok(cert.der().to_vec())
    }
}

/// The parameters every leaf of this CA shares: `CN=<cn>`, not a CA, `digitalSignature`, the one
/// extended key usage, the authority key identifier, the validity and the serial number.
pub(super) fn leaf_params(
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: &Serial,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    params
}

/// Whether a certificate valid from `not_before` to `not_after` is due for automatic renewal at
/// `now`: from two thirds of its lifetime on (and always once expired, or when the validity is
/// empty or inverted).
pub fn renewal_due(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    let lifetime = not_after - not_before;
    if lifetime <= Duration::ZERO {
        return true;
    }
    match not_after.checked_sub(lifetime / 3) {
        Some(due_at) => now >= due_at,
        None => true,
    }
}
