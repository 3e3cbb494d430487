#!/usr/bin/env python3
"""Independent check of Signpost's SAML 2.0 assertions with signxml (lxml + cryptography).

Signpost signs assertions with its own small signer (crates/signpost-oauth/src/saml.rs); this
script verifies them the way a token service would, with a maintained XML-signature library:

    verify.py check-deps
        exit 0 when the pinned signxml (requirements.txt) is importable, else 3.
    verify.py assertion ASSERTION.xml CERT.pem [--expect EXPECT.json]
        verifies the enveloped signature with signxml.XMLVerifier().verify(data, x509_cert=cert)
        (the certificate is always given explicitly: trust comes from it, never from KeyInfo),
        then checks the *signed* content against EXPECT.json (issuer, audience, recipient,
        name_id, name_id_format, name_qualifier, authn_context_class_ref, attributes) and that
        now lies in [NotBefore, NotOnOrAfter).
    verify.py metadata METADATA.xml CERT.pem [--entity-id ID]
        checks IdP metadata: EntityDescriptor/IDPSSODescriptor with a signing KeyDescriptor
        carrying CERT (among possibly several: active and passive during rotation).

Prints one JSON object on stdout: {"ok": true, ...} with exit 0, or {"ok": false, "stage": ...,
"error": ...} with exit 1 (2 for usage errors, 3 when signxml is missing).
"""

import argparse
import base64
import datetime
import json
import pathlib
import sys

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"saml2": SAML, "md": MD, "ds": DS}
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
HERE = pathlib.Path(__file__).resolve().parent


class Failure(Exception):
    def __init__(self, stage, error):
        super().__init__(error)
        self.stage = stage
        self.error = error


def pinned_signxml_version():
    for line in (HERE / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.lower().startswith("signxml=="):
            return line.split("==", 1)[1].strip()
    return None


def check_deps():
    try:
        import importlib.metadata

        import signxml  # noqa: F401

        installed = importlib.metadata.version("signxml")
    except Exception as e:  # ImportError, PackageNotFoundError
        return {"ok": False, "stage": "deps", "error": f"signxml not importable: {e}"}, 3
    pinned = pinned_signxml_version()
    if pinned is not None and installed != pinned:
        return {
            "ok": False,
            "stage": "deps",
            "error": f"signxml {installed} installed, {pinned} pinned",
        }, 3
    return {"ok": True, "signxml": installed}, 0


def parse_time(value, what):
    if value is None:
        raise Failure("expectations", f"{what} missing")
    try:
        t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Failure("expectations", f"{what} is not an xs:dateTime: {value!r}")
    if t.tzinfo is None:
        raise Failure("expectations", f"{what} has no time zone: {value!r}")
    return t


def one(root, path, what):
    found = root.findall(path, NS)
    if len(found) != 1:
        raise Failure("expectations", f"expected exactly one {what}, found {len(found)}")
    return found[0]


def verify_assertion(assertion_path, cert_path, expect_path):
    from lxml import etree
    from signxml import SignatureConfiguration, XMLVerifier
    from signxml.exceptions import InvalidInput, InvalidSignature

    data = pathlib.Path(assertion_path).read_bytes()
    cert = pathlib.Path(cert_path).read_text(encoding="ascii")
    expect = json.loads(pathlib.Path(expect_path).read_text(encoding="utf-8")) if expect_path else {}

    # The signature must be a direct child of the root (the Assertion), with exactly one
    # reference; SHA-1 is refused by signxml's default configuration.
    config = SignatureConfiguration(location="./", expect_references=1)
    try:
        result = XMLVerifier().verify(data, x509_cert=cert, expect_config=config)
    except (InvalidSignature, InvalidInput, etree.XMLSyntaxError, etree.DocumentInvalid) as e:
        raise Failure("signature", f"{type(e).__name__}: {e}")

    # Only what was signed is trusted from here on.
    signed = result.signed_xml
    if signed is None or signed.tag != f"{{{SAML}}}Assertion":
        raise Failure("expectations", "the signed content is not a saml2:Assertion")
    document_root = etree.fromstring(data)
    if document_root.get("ID") != signed.get("ID"):
        raise Failure("expectations", "the signature does not cover the document's Assertion")
    if signed.get("Version") != "2.0":
        raise Failure("expectations", "Version is not 2.0")

    # Signpost writes the assertion already in exclusive canonical form: lxml must agree.
    canonical = etree.tostring(document_root, method="c14n", exclusive=True) == data

    name_id = one(signed, "saml2:Subject/saml2:NameID", "NameID")
    confirmation = one(signed, "saml2:Subject/saml2:SubjectConfirmation", "SubjectConfirmation")
    confirmation_data = one(confirmation, "saml2:SubjectConfirmationData", "SubjectConfirmationData")
    conditions = one(signed, "saml2:Conditions", "Conditions")
    attributes = [
        [a.get("Name"), [v.text or "" for v in a.findall("saml2:AttributeValue", NS)]]
        for a in signed.findall("saml2:AttributeStatement/saml2:Attribute", NS)
    ]
    found = {
        "id": signed.get("ID"),
        "issuer": one(signed, "saml2:Issuer", "Issuer").text or "",
        "audience": one(
            conditions, "saml2:AudienceRestriction/saml2:Audience", "Audience"
        ).text or "",
        "recipient": confirmation_data.get("Recipient"),
        "name_id": name_id.text or "",
        "name_id_format": name_id.get("Format"),
        "name_qualifier": name_id.get("NameQualifier"),
        "authn_context_class_ref": one(
            signed,
            "saml2:AuthnStatement/saml2:AuthnContext/saml2:AuthnContextClassRef",
            "AuthnContextClassRef",
        ).text or "",
        "attributes": attributes,
        "issue_instant": signed.get("IssueInstant"),
        "not_before": conditions.get("NotBefore"),
        "not_on_or_after": conditions.get("NotOnOrAfter"),
        "confirmation_not_on_or_after": confirmation_data.get("NotOnOrAfter"),
        "embedded_certificate": document_root.find(
            "ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS
        )
        is not None,
        "canonical": canonical,
    }

    for key, want in expect.items():
        if key not in found:
            raise Failure("usage", f"unknown expectation {key!r}")
        if found[key] != want:
            raise Failure(
                "expectations", f"{key}: expected {want!r}, found {found[key]!r}"
            )

    if confirmation.get("Method") != BEARER:
        raise Failure("expectations", "SubjectConfirmation Method is not bearer")
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before = parse_time(found["not_before"], "NotBefore")
    not_on_or_after = parse_time(found["not_on_or_after"], "NotOnOrAfter")
    confirmation_until = parse_time(found["confirmation_not_on_or_after"], "SubjectConfirmationData NotOnOrAfter")
    if not (not_before <= now < not_on_or_after):
        raise Failure(
            "expectations",
            f"now ({now.isoformat()}) is outside [{found['not_before']}, {found['not_on_or_after']})",
        )
    if not now < confirmation_until:
        raise Failure("expectations", "SubjectConfirmationData has expired")

    return {"ok": True, **found}


def verify_metadata(metadata_path, cert_path, entity_id):
    from lxml import etree

    data = pathlib.Path(metadata_path).read_bytes()
    cert_lines = pathlib.Path(cert_path).read_text(encoding="ascii").strip().splitlines()
    cert_b64 = "".join(line.strip() for line in cert_lines if not line.startswith("-----"))
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError as e:
        raise Failure("parse", str(e))
    if root.tag != f"{{{MD}}}EntityDescriptor":
        raise Failure("expectations", f"root is {root.tag}")
    if entity_id is not None and root.get("entityID") != entity_id:
        raise Failure("expectations", f"entityID is {root.get('entityID')!r}")
    idp = one(root, "md:IDPSSODescriptor", "IDPSSODescriptor")
    if "urn:oasis:names:tc:SAML:2.0:protocol" not in (idp.get("protocolSupportEnumeration") or "").split():
        raise Failure("expectations", "protocolSupportEnumeration lacks SAML 2.0")
    signing = idp.findall(
        "md:KeyDescriptor[@use='signing']/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS
    )
    wanted = base64.b64decode(cert_b64)
    if not any(base64.b64decode(c.text or "") == wanted for c in signing):
        raise Failure("expectations", f"CERT is not among the {len(signing)} signing certificates")
    if not idp.findall("md:SingleSignOnService", NS):
        raise Failure("expectations", "no SingleSignOnService (required by the schema)")
    return {"ok": True, "entity_id": root.get("entityID"), "signing_certificates": len(signing)}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-deps")
    a = sub.add_parser("assertion")
    a.add_argument("assertion")
    a.add_argument("cert")
    a.add_argument("--expect")
    m = sub.add_parser("metadata")
    m.add_argument("metadata")
    m.add_argument("cert")
    m.add_argument("--entity-id")
    args = parser.parse_args(argv)

    if args.command == "check-deps":
        out, code = check_deps()
        print(json.dumps(out))
        return code
    deps, code = check_deps()
    if code != 0:
        print(json.dumps(deps))
        return code
    try:
        if args.command == "assertion":
            out = verify_assertion(args.assertion, args.cert, args.expect)
        else:
            out = verify_metadata(args.metadata, args.cert, args.entity_id)
    except Failure as f:
        print(json.dumps({"ok": False, "stage": f.stage, "error": f.error}))
        return 2 if f.stage == "usage" else 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
