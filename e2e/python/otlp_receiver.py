"""A small OTLP/gRPC receiver for the end-to-end test `traces::` (e2e/tests/it/traces.rs).

Implements the OpenTelemetry collector's TraceService and MetricsService Export with the
protocol definitions from PyPI (`opentelemetry-proto`, `grpcio`), and appends what it receives
to a file as JSON lines, one per span and one per metric data point:

  {"kind": "span", "resource": {...}, "trace_id": hex, "span_id": hex, "parent_span_id": hex,
   "name": ..., "span_kind": int, "attributes": {...}}
  {"kind": "metric", "resource": {...}, "name": ..., "type": "sum"|"gauge"|"histogram",
   "attributes": {...}, "value": number, "count": int}

Usage: otlp_receiver.py OUTPUT_FILE. It listens on 127.0.0.1 on a free port, prints
`listening <port>` on standard output once it serves, and runs until killed.
"""

import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

LOCK = threading.Lock()


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        return str(getattr(v, kind))
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


class Output:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")

    def write(self, records):
        with LOCK:
            for record in records:
                self.file.write(json.dumps(record) + "\n")
            self.file.flush()


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        records = []
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    records.append(
                        {
                            "kind": "span",
                            "resource": resource,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "span_kind": span.kind,
                            "attributes": attributes(span.attributes),
                        }
                    )
        self.out.write(records)
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        records = []
        for rm in request.resource_metrics:
            resource = attributes(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    base = {"kind": "metric", "resource": resource, "name": metric.name}
                    if kind in ("sum", "gauge"):
                        for p in getattr(metric, kind).data_points:
                            value = p.as_double if p.HasField("as_double") else p.as_int
                            records.append(
                                dict(
                                    base,
                                    type=kind,
                                    attributes=attributes(p.attributes),
                                    value=value,
                                )
                            )
                    elif kind == "histogram":
                        for p in metric.histogram.data_points:
                            records.append(
                                dict(
                                    base,
                                    type=kind,
                                    attributes=attributes(p.attributes),
                                    value=p.sum,
                                    count=p.count,
                                )
                            )
        self.out.write(records)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main():
    out = Output(sys.argv[1])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(out), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(out), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
