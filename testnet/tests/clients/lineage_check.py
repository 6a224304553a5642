"""Checks OpenLineage events a mesh node wrote, two ways:

1. against the OpenLineage JSON Schemas (tests/clients/openlineage/: the event's
   RunEvent, and each facet against the schema its `_schemaURL` names), and
2. rebuilt with the `openlineage-python` client's own spec models, whose
   validators check the time and the URIs, and dumped back: the dump must equal
   the event (so every field is one the spec has, and each facet's schema URL
   is the one the client's models carry).

Usage: lineage_check.py EVENTS.jsonl
Prints one JSON object: {"events": [{"job", "inputs", "outputs", "facets",
"versions", "sql"}...], "errors": [...]}; exits 0 either way (the test reads it).
"""

import json
import pathlib
import sys

import jsonschema
import referencing
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    documentation_dataset,
    ownership_dataset,
    schema_dataset,
    sql_job,
)
from openlineage.client.serde import Serde

SPEC = pathlib.Path(__file__).parent / "openlineage"


def registry():
    """Every vendored schema, by its $id."""
    resources = []
    for path in SPEC.glob("*.json"):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], referencing.Resource.from_contents(doc)))
    return referencing.Registry().with_resources(resources)


def validate(event, reg, errors):
    """The event against RunEvent, each facet against its own schema."""

    def check(instance, url, where):
        try:
            jsonschema.Draft202012Validator({"$ref": url}, registry=reg).validate(instance)
        except Exception as e:  # noqa: BLE001
            errors.append(f"{where}: {e}")

    check(event, event["schemaURL"], "event")
    facets = [("job", event["job"].get("facets", {}))]
    for side in ("inputs", "outputs"):
        for d in event.get(side, []):
            facets.append((f"{side}/{d['name']}", d.get("facets", {})))
    for where, group in facets:
        for name, facet in group.items():
            check(facet, facet["_schemaURL"], f"{where}/{name}")


def dataset_facets(raw):
    """A dataset's facets as the client's models."""
    out = {}
    for name, f in raw.items():
        producer = f["_producer"]
        if name == "schema":
            fields = [
                schema_dataset.SchemaDatasetFacetFields(
                    name=x["name"],
                    type=x.get("type"),
                    description=x.get("description"),
                    ordinal_position=x.get("ordinal_position"),
                )
                for x in f["fields"]
            ]
            out[name] = schema_dataset.SchemaDatasetFacet(fields=fields, producer=producer)
        elif name == "documentation":
            out[name] = documentation_dataset.DocumentationDatasetFacet(
                description=f["description"], producer=producer
            )
        elif name == "ownership":
            owners = [ownership_dataset.Owner(name=o["name"], type=o.get("type")) for o in f["owners"]]
            out[name] = ownership_dataset.OwnershipDatasetFacet(owners=owners, producer=producer)
        elif name == "version":
            out[name] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=f["datasetVersion"], producer=producer
            )
        else:
            raise ValueError(f"unexpected dataset facet {name}")
    return out


def rebuild(event):
    """The event as the client's models."""
    job_facets = {}
    for name, f in event["job"].get("facets", {}).items():
        if name != "sql":
            raise ValueError(f"unexpected job facet {name}")
        job_facets[name] = sql_job.SQLJobFacet(query=f["query"], producer=f["_producer"])
    return RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"], facets={}),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"], facets=job_facets),
        inputs=[
            InputDataset(namespace=d["namespace"], name=d["name"], facets=dataset_facets(d["facets"]))
            for d in event["inputs"]
        ],
        outputs=[
            OutputDataset(namespace=d["namespace"], name=d["name"], facets=dataset_facets(d["facets"]))
            for d in event["outputs"]
        ],
        producer=event["producer"],
    )


def prune(value):
    """`value` without empty lists and objects (the models add empty defaults,
    such as a field's `fields` and a dataset's `outputFacets`)."""
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def main() -> None:
    errors, events = [], []
    reg = registry()
    for i, line in enumerate(pathlib.Path(sys.argv[1]).read_text().splitlines()):
        try:
            event = json.loads(line)
            validate(event, reg, errors)
            dumped = Serde.to_dict(rebuild(event))
            if prune(dumped) != prune(event):
                errors.append(f"event {i}: the client's models give {json.dumps(dumped)}, not {line}")
            events.append(
                {
                    "job": event["job"]["name"],
                    "inputs": [d["name"] for d in event["inputs"]],
                    "outputs": [d["name"] for d in event["outputs"]],
                    "facets": sorted(event["outputs"][0]["facets"]),
                    "versions": [
                        d["facets"].get("version", {}).get("datasetVersion")
                        for d in event["inputs"] + event["outputs"]
                    ],
                    "sql": event["job"]["facets"].get("sql", {}).get("query"),
                }
            )
        except Exception as e:  # noqa: BLE001
            errors.append(f"event {i}: {type(e).__name__}: {e}")
    print(json.dumps({"events": events, "errors": errors}))


if __name__ == "__main__":
    main()
