"""SAP Cloud SDK for Python (sap-cloud-sdk, pinned in requirements.txt) against Signpost.

Configured as an application is: the service key in CLOUD_SDK_CFG_DESTINATION_DEFAULT_* (the
SDK's own secret resolver reads them), the server's CA trusted through SSL_CERT_FILE /
REQUESTS_CA_BUNDLE. Reads destinations, then drives the label calls of the three clients on
the entities named below (which the test created) and lists each kind filtered by label.
Prints one JSON object with what the SDK returned; exits 1 (with the error in the JSON) when
a call raised.

    SIGNPOST_SDK_DESTINATION   a subaccount destination to read (and label)
    SIGNPOST_SDK_FRAGMENT      a subaccount fragment to label
    SIGNPOST_SDK_CERTIFICATE   a subaccount certificate to label
"""

import json
import os
import sys
import traceback

from sap_cloud_sdk.destination import (
    AccessStrategy,
    ConsumptionLevel,
    Label,
    ListOptions,
    PatchLabels,
    create_certificate_client,
    create_client,
    create_fragment_client,
)


def plain(value):
    """An enum's value, anything else as it is (for JSON)."""
    return getattr(value, "value", value)


def labels(items):
    return [{"key": l.key, "values": list(l.values)} for l in items]


def label_calls(get, update, patch, name):
    """PUT, PATCH ADD, PATCH DELETE, then GET, as an application would; each step's GET."""
    steps = {}
    update(name, [Label(key="env", values=["prod", "eu"]), Label(key="team", values=["payments"])])
    steps["after_update"] = labels(get(name))
    patch(name, PatchLabels(action="ADD", labels=[Label(key="env", values=["us"]), Label(key="tier", values=["gold"])]))
    steps["after_add"] = labels(get(name))
    patch(name, PatchLabels(action="DELETE", labels=[Label(key="env", values=["eu"]), Label(key="tier", values=[])]))
    steps["after_delete"] = labels(get(name))
    return steps


def main():
    out = {}
    try:
        dest_name = os.environ["SIGNPOST_SDK_DESTINATION"]
        frag_name = os.environ["SIGNPOST_SDK_FRAGMENT"]
        cert_name = os.environ["SIGNPOST_SDK_CERTIFICATE"]
        client = create_client()
        fragments = create_fragment_client()
        certificates = create_certificate_client()

        dest = client.get_subaccount_destination(dest_name, access_strategy=AccessStrategy.PROVIDER_ONLY)
        out["read"] = None if dest is None else {"name": dest.name, "url": dest.url, "authentication": plain(dest.authentication)}
        # The v2 consume API looks on instance level unless told: the destination is on subaccount level.
        consumed = client.get_destination(dest_name, level=ConsumptionLevel.SUBACCOUNT)
        out["consumed"] = None if consumed is None else {"name": consumed.name, "url": consumed.url}
        out["missing"] = client.get_subaccount_destination("sdk-no-such-destination", access_strategy=AccessStrategy.PROVIDER_ONLY) is None

        out["destination"] = label_calls(
            client.get_destination_labels, client.update_destination_labels, client.patch_destination_labels, dest_name
        )
        out["fragment"] = label_calls(
            fragments.get_fragment_labels, fragments.update_fragment_labels, fragments.patch_fragment_labels, frag_name
        )
        out["certificate"] = label_calls(
            certificates.get_certificate_labels,
            certificates.update_certificate_labels,
            certificates.patch_certificate_labels,
            cert_name,
        )

        by_label = ListOptions(filter_labels=[Label(key="env", values=["prod"]), Label(key="team", values=["payments"])])
        out["filtered"] = {
            "destinations": sorted(d.name for d in client.list_subaccount_destinations(
                access_strategy=AccessStrategy.PROVIDER_ONLY, filter=by_label).items),
            "fragments": sorted(f.name for f in fragments.list_subaccount_fragments(
                access_strategy=AccessStrategy.PROVIDER_ONLY, filter=by_label)),
            "certificates": sorted(c.name for c in certificates.list_subaccount_certificates(
                access_strategy=AccessStrategy.PROVIDER_ONLY, filter=by_label).items),
        }
    except Exception as e:  # the test shows what failed
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
        print(json.dumps(out, indent=2))
        return 1
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
