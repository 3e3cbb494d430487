"""Checks every answer recorded in a HAR file against Signpost's OpenAPI document.

Usage: conform.py OPENAPI_JSON HAR_FILE

Used by crates/signpost/tests/schemathesis.rs for the run against SAP's document: schemathesis
checks the answers against the document it generates from (SAP's), which leaves out answers SAP's
own service gives; this checks the same answers against Signpost's document, the one a client of
Signpost reads. For each request:

- its method and path are an operation of Signpost's document (one SAP's document has and
  Signpost's lacks must be answered 404 or 405, and is counted apart);
- the status code is documented for the operation (or a `default` / `4XX` range is);
- a body's media type is one the documented response declares;
- a JSON body is valid against the documented schema (JSON Schema 2020-12, as OpenAPI 3.1 says).

A request that is not valid HTTP (SAP's document names a header `X-chain-var-<variable-name>`,
and `<` may not be in a header name) is answered 400 by the HTTP layer before any operation; such
answers are counted apart.

Prints a summary (requests, operations, answers by status, what was not in the document) and every
failure (at most 50 of each kind); exits 1 when one was found, 2 on bad arguments.
"""

import base64
import collections
import json
import re
import sys
from urllib.parse import unquote, urlsplit

import jsonschema_rs

MAX_SHOWN = 50

# RFC 9110's token characters: what a header name may hold.
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def operations(doc):
    """(method, compiled path regex, template, operation), literal paths before templated ones."""
    ops = []
    for template, item in doc.get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                ops.append((method.upper(), re.compile(pattern), template, op))
    ops.sort(key=lambda o: o[2].count("{"))
    return ops


def documented_response(op, status):
    responses = op.get("responses", {})
    for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
        if key in responses:
            return responses[key]
    return None


def resolve(doc, node):
    """Follows a `$ref` to `#/components/...` (responses may be references)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 10:
        path = node["$ref"].lstrip("#/").split("/")
        node = doc
        for part in path:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        seen += 1
    return node


class Validators:
    """One compiled validator per schema, its `$ref`s resolved within the document."""

    def __init__(self, doc):
        self.components = doc.get("components", {})
        self.cache = {}

    def validator(self, schema):
        key = json.dumps(schema, sort_keys=True)
        if key not in self.cache:
            rooted = dict(schema)
            rooted.setdefault("components", self.components)
            self.cache[key] = jsonschema_rs.Draft202012Validator(rooted)
        return self.cache[key]


def body_of(content):
    text = content.get("text")
    if text is None:
        return b""
    if content.get("encoding") == "base64":
        return base64.b64decode(text)
    return text.encode()


def media_type(mime):
    return (mime or "").split(";")[0].strip().lower()


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    with open(argv[2]) as f:
        har = json.load(f)
    ops = operations(doc)
    validators = Validators(doc)
    failures = collections.defaultdict(list)
    by_status = collections.Counter()
    seen_ops = set()
    undocumented = collections.Counter()
    malformed = 0
    entries = har.get("log", {}).get("entries", [])
    for entry in entries:
        req, res = entry["request"], entry["response"]
        method = req["method"].upper()
        path = unquote(urlsplit(req["url"]).path)
        status = int(res["status"])
        by_status[status] += 1
        what = f"{method} {path} -> {status}"
        if status == 400 and any(not TOKEN.match(h["name"]) for h in req.get("headers", [])):
            malformed += 1
            continue
        raw_path = urlsplit(req["url"]).path
        found = next(((t, o) for m, rx, t, o in ops if m == method and rx.match(raw_path)), None)
        if found is None:
            if status in (404, 405):
                undocumented[f"{method} {path}"] += 1
            else:
                failures["operation not in Signpost's document"].append(what)
            continue
        template, op = found
        seen_ops.add(f"{method} {template}")
        documented = resolve(doc, documented_response(op, status))
        if documented is None:
            failures["status code not documented"].append(what)
            continue
        content = documented.get("content") or {}
        body = body_of(res.get("content", {}))
        if not body:
            continue
        mime = media_type(res.get("content", {}).get("mimeType"))
        if not content:
            failures["a body where the document declares none"].append(f"{what} ({mime})")
            continue
        declared = {media_type(k) for k in content}
        if mime not in declared and "*/*" not in declared:
            failures["media type not documented"].append(
                f"{what}: {mime}, documented {sorted(declared)}"
            )
            continue
        schema = (content.get(mime) or content.get("*/*") or {}).get("schema")
        if schema is None or not (mime == "application/json" or mime.endswith("+json")):
            continue
        try:
            value = json.loads(body)
        except ValueError as e:
            failures["JSON body that does not parse"].append(f"{what}: {e}")
            continue
        errors = list(validators.validator(schema).iter_errors(value))
        if errors:
            failures["body not valid against the documented schema"].append(
                f"{what}: {errors[0].message} at {list(errors[0].instance_path)}"
            )

    total_failures = sum(len(v) for v in failures.values())
    print(
        f"conformance to Signpost's document: {len(entries)} answers, "
        f"{len(seen_ops)} operations of it, statuses "
        + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items()))
    )
    if malformed:
        print(f"  {malformed} requests with a header name HTTP does not allow: answered 400")
    if undocumented:
        print(
            f"  {sum(undocumented.values())} requests of {len(undocumented)} method and path pairs "
            "that Signpost's document does not have (schemathesis' unsupported-method probes, "
            "SAP's maintenance API): all answered 404 or 405"
        )
    for kind, items in sorted(failures.items()):
        print(f"FAILED: {kind} ({len(items)}):")
        for item in items[:MAX_SHOWN]:
            print(f"  {item}")
    if not entries:
        print("FAILED: the HAR file records no answer")
        return 1
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
