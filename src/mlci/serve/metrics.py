"""Prometheus metrics of the gateway (text format at `GET /metrics`).

    mlci_requests_total{variant,version}          answered /predict requests
    mlci_errors_total{variant,version}            requests whose model raised
    mlci_bad_requests_total                       refused requests, all reasons (HTTP 4xx/503)
    mlci_refused_total{endpoint,reason}           refused requests by reason (bad_json,
                                                  bad_input, too_many_pixels, unauthorized,
                                                  bad_label, duplicate_label, unknown_request,
                                                  unknown_model, body_too_large, body_timeout,
                                                  overloaded, client_overloaded, log_share)
    mlci_connections_dropped_total{reason}        header_timeout, body_timeout, body_too_slow,
                                                  evicted, over_capacity, client_over_capacity
    mlci_input_refused_total{variant,version}     requests the routed variant's input spec
                                                  refused (client errors, 400; never model
                                                  errors; variant "shadow" for shadow scoring)
    mlci_internal_errors_total{endpoint}          requests the gateway itself failed (JSON 500)
    mlci_prediction_log_failures_total{op}        log writes that failed
    mlci_unlogged_requests_total{variant}         answered while the log failed (fail open)
    mlci_prediction_log_pruned_rows               rows deleted by the log's retention
    mlci_request_latency_seconds{variant}         model time per request (histogram)
    mlci_feedback_total{variant}                  labelled instances
    mlci_feedback_correct_total{variant}          labelled instances predicted right
    mlci_feedback_accuracy{variant}               correct / labelled since start
    mlci_shadow_compared_total, mlci_shadow_disagreements_total
    mlci_route_weight{variant}                    current traffic share in percent
    mlci_routing_generation                       rollout state generation applied
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (.0005, .001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .25, .5,
           1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import disable_created_metrics

        disable_created_metrics()  # the *_created series add nothing here
        r = self.registry = CollectorRegistry()
        self.requests = Counter("mlci_requests", "Answered /predict requests.",
                                ["variant", "version"], registry=r)
        self.errors = Counter("mlci_errors", "Requests whose model raised.",
                              ["variant", "version"], registry=r)
        self.bad = Counter("mlci_bad_requests", "Rejected input.", registry=r)
        self.refused = Counter("mlci_refused", "Refused requests by reason.",
                               ["endpoint", "reason"], registry=r)
        self.dropped = Counter("mlci_connections_dropped", "Connections closed by the guard.",
                               ["reason"], registry=r)
        self.input_refused = Counter("mlci_input_refused",
                                     "Requests the routed variant's input spec refused.",
                                     ["variant", "version"], registry=r)
        self.internal = Counter("mlci_internal_errors",
                                "Requests the gateway failed on (a bug; answered JSON 500).",
                                ["endpoint"], registry=r)
        self.log_failures = Counter("mlci_prediction_log_failures",
                                    "Prediction-log operations that failed.", ["op"],
                                    registry=r)
        self.unlogged = Counter("mlci_unlogged_requests",
                                "Requests answered while the prediction log failed.",
                                ["variant"], registry=r)
        self.pruned = Gauge("mlci_prediction_log_pruned_rows",
                            "Rows deleted by the prediction log's retention since start.",
                            registry=r)
        self.latency = Histogram("mlci_request_latency_seconds", "Model time per request.",
                                 ["variant"], buckets=BUCKETS, registry=r)
        self.labelled = Counter("mlci_feedback", "Labelled instances.", ["variant"],
                                registry=r)
        self.correct = Counter("mlci_feedback_correct", "Labelled instances predicted right.",
                               ["variant"], registry=r)
        self.accuracy = Gauge("mlci_feedback_accuracy", "Labelled-feedback accuracy.",
                              ["variant"], registry=r)
        self.shadow = Counter("mlci_shadow_compared", "Instances scored in shadow.",
                              registry=r)
        self.disagree = Counter("mlci_shadow_disagreements",
                                "Shadow answers that differ from the served answer.",
                                registry=r)
        self.weight = Gauge("mlci_route_weight", "Traffic share in percent.", ["variant"],
                            registry=r)
        self.generation = Gauge("mlci_routing_generation", "Rollout state generation applied.",
                                registry=r)
        self._acc: dict[str, list[int]] = {}
        self._lock = threading.Lock()  # feedback arrives on worker threads
        # the lazy label children are created up front so the series exist from the start
        for op in ("predict", "feedback", "shadow"):
            self.log_failures.labels(op)
        for v in ("champion", "challenger"):
            self.labelled.labels(v)
            self.correct.labels(v)
            self.latency.labels(v)

    def refuse(self, endpoint: str, reason: str) -> None:
        self.bad.inc()
        self.refused.labels(endpoint, reason).inc()

    def feedback(self, variant: str, n: int, correct: int) -> None:
        self.labelled.labels(variant).inc(n)
        self.correct.labels(variant).inc(correct)
        with self._lock:
            acc = self._acc.setdefault(variant, [0, 0])
            acc[0] += n
            acc[1] += correct
            self.accuracy.labels(variant).set(acc[1] / acc[0] if acc[0] else 0.0)

    def routing(self, weight: float, generation: int) -> None:
        self.weight.labels("challenger").set(weight)
        self.weight.labels("champion").set(100 - weight)
        self.generation.set(generation)
