"""Drives a mesh node's Delta Sharing port with the real Delta Sharing connector
(named so that it does not shadow the `delta_sharing` package it imports).

Usage: sharing_client.py PROFILE MODE [TABLE] [ARG]
  MODE tables    SharingClient.list_all_tables(), then the same listing page by
                 page over REST (maxResults=1): {"tables": [...], "paged": [...]}
  MODE load      load_as_pandas(TABLE), at version ARG if given:
                 {"rows": [{...}], "dtypes": {...}}
  MODE asof      load_as_pandas(TABLE, timestamp=ARG)
  MODE changes   load_table_changes_as_pandas(TABLE, starting_version=ARG)
  MODE version   get_table_version(TABLE): {"version": n}
  MODE links     POST .../query over REST: {"urls": [...], "expiration": ms}
  MODE get       GET TABLE (a file URL): {"status": code, "bytes": n}
  MODE equal     load_as_pandas(TABLE) against pandas reading the original file
                 ARG (CSV with NA as null, or Parquet): {"equal": bool, "why": ...}
TABLE is share.schema.table. TLS roots come from REQUESTS_CA_BUNDLE and
SSL_CERT_FILE. Prints one JSON object, or {"error": "..."}; exits 0 either way
(the test reads the JSON).
"""

import json
import sys

import delta_sharing
import requests


def frame(df):
    """Rows as records (NaN and None as null) and the column dtypes."""
    rows = json.loads(df.to_json(orient="records"))
    return {"rows": rows, "dtypes": {c: str(t) for c, t in df.dtypes.items()}}


def paged(profile_path):
    """Every table, listed one per page over REST, following nextPageToken."""
    profile = delta_sharing.protocol.DeltaSharingProfile.read_from_file(profile_path)
    auth = {"Authorization": f"Bearer {profile.bearer_token}"}
    share = requests.get(f"{profile.endpoint}/shares", headers=auth, timeout=30).json()
    name = share["items"][0]["name"]
    out, token = [], None
    for _ in range(1000):
        params = {"maxResults": 1}
        if token:
            params["pageToken"] = token
        page = requests.get(
            f"{profile.endpoint}/shares/{name}/all-tables", headers=auth, params=params, timeout=30
        )
        page.raise_for_status()
        body = page.json()
        out += [f"{t['schema']}.{t['name']}" for t in body.get("items", [])]
        token = body.get("nextPageToken")
        if not token:
            return out
    raise RuntimeError("the listing never ended")


def links(profile_path, table):
    """The file URLs and their expiry of a snapshot query of TABLE."""
    profile = delta_sharing.protocol.DeltaSharingProfile.read_from_file(profile_path)
    share, schema, name = table.split(".")
    r = requests.post(
        f"{profile.endpoint}/shares/{share}/schemas/{schema}/tables/{name}/query",
        headers={"Authorization": f"Bearer {profile.bearer_token}"},
        json={},
        timeout=60,
    )
    r.raise_for_status()
    files = [json.loads(line)["file"] for line in r.text.splitlines()[2:]]
    return {
        "urls": [f["url"] for f in files],
        "expiration": min(f["expirationTimestamp"] for f in files),
    }


def main() -> None:
    profile, mode = sys.argv[1:3]
    table = sys.argv[3] if len(sys.argv) > 3 else ""
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    url = f"{profile}#{table}"
    try:
        if mode == "tables":
            client = delta_sharing.SharingClient(profile)
            tables = sorted(f"{t.schema}.{t.name}" for t in client.list_all_tables())
            print(json.dumps({"tables": tables, "paged": sorted(paged(profile))}))
        elif mode == "load":
            version = int(arg) if arg is not None else None
            print(json.dumps(frame(delta_sharing.load_as_pandas(url, version=version))))
        elif mode == "asof":
            print(json.dumps(frame(delta_sharing.load_as_pandas(url, timestamp=arg))))
        elif mode == "changes":
            df = delta_sharing.load_table_changes_as_pandas(url, starting_version=int(arg))
            print(json.dumps(frame(df)))
        elif mode == "links":
            print(json.dumps(links(profile, table)))
        elif mode == "get":
            r = requests.get(table, timeout=60)
            print(json.dumps({"status": r.status_code, "bytes": len(r.content)}))
        elif mode == "equal":
            import pandas as pd

            got = delta_sharing.load_as_pandas(url)
            if arg.endswith(".csv"):
                want = pd.read_csv(arg, na_values=["NA"], keep_default_na=False)
            else:
                want = pd.read_parquet(arg)
            try:
                pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
                print(json.dumps({"equal": True, "rows": len(got)}))
            except AssertionError as e:
                print(json.dumps({"equal": False, "why": str(e), "got": str(got.dtypes), "want": str(want.dtypes)}))
        elif mode == "version":
            print(json.dumps({"version": delta_sharing.get_table_version(url)}))
        else:
            raise ValueError(f"unknown mode {mode}")
    except Exception as e:  # noqa: BLE001 - the test reads the message
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()
