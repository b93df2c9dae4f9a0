"""Scrapes the daemon's /metrics twice, as a classic Prometheus scraper and as an
OpenMetrics one, parses each with the prometheus_client package's parser for that
format, checks that both say the same, and prints the samples as JSON:
{"content_type": ..., "samples": [[name, {labels}, value, family_type], ...]}.
Any parse error fails the script (and so the test)."""

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families


def get(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["Content-Type"], response.read().decode("utf-8")


def samples(families):
    return sorted(
        (
            [sample.name, dict(sample.labels), sample.value, family.type]
            for family in families
            for sample in family.samples
        ),
        key=lambda sample: json.dumps(sample, sort_keys=True),
    )


def main():
    url = sys.argv[1]
    classic_type, classic = get(url)
    open_type, openmetrics = get(url, "application/openmetrics-text; version=1.0.0")
    classic_samples = samples(text_string_to_metric_families(classic))
    open_samples = samples(openmetrics_families(openmetrics))
    # The two scrapes are taken with no traffic in between, so they must agree.
    if classic_samples != open_samples:
        sys.exit(
            "the formats disagree:\nclassic: %r\nopenmetrics: %r"
            % (classic_samples, open_samples)
        )
    json.dump(
        {
            "content_type": classic_type,
            "openmetrics_content_type": open_type,
            "samples": classic_samples,
        },
        sys.stdout,
    )


main()
