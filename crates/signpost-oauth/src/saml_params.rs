//! From a destination's SAML properties and a verified user to a signed assertion (API.md §3.2:
//! `OAuth2SAMLBearerAssertion` and `SAMLAssertion`).

use crate::FlowError;
use serde_json::{Map, Value};

use crate::flows::prop;
use crate::saml::{self, AssertionParams};
use crate::{SamlSigner, VerifiedUser};

const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// The NameID: the claim named by `userIdSource`, else `user_name`, `email` (for the e-mail
/// format) and `sub`, in that order.
fn name_id(d: &Map<String, Value>, user: &VerifiedUser, format: &str) -> Result<String, FlowError> {
    if let Some(source) = prop(d, "userIdSource") {
        return user.claim(source).map(str::to_owned).ok_or_else(|| {
            FlowError::Saml(format!(
                "the user token has no '{source}' claim (userIdSource)"
            ))
        });
    }
    let order: &[&str] = if format == EMAIL_FORMAT {
        &["email", "user_name", "sub"]
    } else {
        &["user_name", "email", "sub"]
    };
    order
        .iter()
        .find_map(|c| user.claim(c))
        .map(str::to_owned)
        .ok_or_else(|| {
            FlowError::Saml("the user token names no user (user_name, email or sub)".to_string())
        })
}

/// User attributes for the AttributeStatement.
fn attributes(d: &Map<String, Value>, user: &VerifiedUser) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for claim in ["email", "given_name", "family_name"] {
        if let Some(v) = user.claim(claim) {
            out.push((claim.to_owned(), vec![v.to_owned()]));
        }
    }
    if prop(d, "skipUserUuidInSAMLAttributes") != Some("true") {
        if let Some(v) = user.claim("user_uuid") {
            out.push(("user_uuid".to_owned(), vec![v.to_owned()]));
        }
    }
    if let Some(company) = prop(d, "companyId") {
        out.push(("companyId".to_owned(), vec![company.to_owned()]));
    }
    let prefix = if prop(d, "skipUserAttributesPrefixInSAMLAttributes") == Some("true") {
        ""
    } else {
        "user_attributes."
    };
    if let Some(Value::Object(attrs)) = user.claims.get("xs.user.attributes") {
        for (k, v) in attrs {
            let values: Vec<String> = match v {
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                Value::String(s) => vec![s.clone()],
                _ => continue,
            };
            out.push((format!("{prefix}{k}"), values));
        }
    }
    out
}

/// Builds and signs the assertion. `bearer` is the OAuth2SAMLBearerAssertion case, whose
/// recipient defaults to the token service.
pub(crate) fn assertion(
    d: &Map<String, Value>,
    user: &VerifiedUser,
    signer: &SamlSigner,
    bearer: bool,
) -> Result<String, FlowError> {
    let required = |name: &str| {
        prop(d, name)
            .ok_or_else(|| FlowError::Destination(format!("the property {name} is required")))
    };
    let audience = required("audience")?;
    let class_ref = required("authnContextClassRef")?;
    let recipient = prop(d, "assertionRecipient")
        .or_else(|| {
            if bearer {
                prop(d, "tokenServiceURL")
            } else {
                prop(d, "URL")
            }
        })
        .unwrap_or(audience);
    let format = prop(d, "nameIdFormat").unwrap_or(saml::NAME_ID_FORMAT_UNSPECIFIED);
    let issuer = prop(d, "assertionIssuer").unwrap_or(&signer.issuer);
    let mut params = AssertionParams::new(issuer, audience, recipient, name_id(d, user, format)?);
    params.name_id_format = format.to_owned();
    params.name_qualifier = prop(d, "nameQualifier").map(str::to_owned);
    params.authn_context_class_ref = class_ref.to_owned();
    params.attributes = attributes(d, user);
    let include = prop(d, "includeSigningCertificateInSAMLAssertion") == Some("true");
    saml::build_signed_assertion(&params, &signer.keys, include)
        .map_err(|e| FlowError::Saml(format!("The SAML assertion could not be built: {e}")))
}
