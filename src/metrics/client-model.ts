// The Prometheus client data model (io.prometheus.client, metrics.proto of prometheus/client_model, as
// prometheus/prometheus parses it) as a protobufjs reflection definition: the messages the protobuf exposition
// of /metrics encodes. A static module rather than a vendored .proto loaded at run time: nothing to copy into
// the build or the image, no file read on the hot path, and the type checker sees the one place that names the
// field numbers. Only the fields queuelens writes are listed (exemplars, summaries' created timestamps and
// float histograms are not); protobuf readers skip nothing they need, and field numbers are the wire contract.
import protobuf from 'protobufjs';

const bucketSpan = { fields: { offset: { type: 'sint32', id: 1 }, length: { type: 'uint32', id: 2 } } };

const root = protobuf.Root.fromJSON({
  nested: {
    io: {
      nested: {
        prometheus: {
          nested: {
            client: {
              nested: {
                LabelPair: { fields: { name: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
                MetricType: { values: { COUNTER: 0, GAUGE: 1, SUMMARY: 2, UNTYPED: 3, HISTOGRAM: 4, GAUGE_HISTOGRAM: 5 } },
                Gauge: { fields: { value: { type: 'double', id: 1 } } },
                Counter: { fields: { value: { type: 'double', id: 1 } } },
                Quantile: { fields: { quantile: { type: 'double', id: 1 }, value: { type: 'double', id: 2 } } },
                Summary: {
                  fields: {
                    sampleCount: { type: 'uint64', id: 1 },
                    sampleSum: { type: 'double', id: 2 },
                    quantile: { rule: 'repeated', type: 'Quantile', id: 3 },
                  },
                },
                Untyped: { fields: { value: { type: 'double', id: 1 } } },
                Bucket: { fields: { cumulativeCount: { type: 'uint64', id: 1 }, upperBound: { type: 'double', id: 2 } } },
                BucketSpan: bucketSpan,
                Histogram: {
                  fields: {
                    sampleCount: { type: 'uint64', id: 1 },
                    sampleSum: { type: 'double', id: 2 },
                    bucket: { rule: 'repeated', type: 'Bucket', id: 3 },
                    schema: { type: 'sint32', id: 5 },
                    zeroThreshold: { type: 'double', id: 6 },
                    zeroCount: { type: 'uint64', id: 7 },
                    positiveSpan: { rule: 'repeated', type: 'BucketSpan', id: 12 },
                    positiveDelta: { rule: 'repeated', type: 'sint64', id: 13 },
                  },
                },
                Metric: {
                  fields: {
                    label: { rule: 'repeated', type: 'LabelPair', id: 1 },
                    gauge: { type: 'Gauge', id: 2 },
                    counter: { type: 'Counter', id: 3 },
                    summary: { type: 'Summary', id: 4 },
                    untyped: { type: 'Untyped', id: 5 },
                    histogram: { type: 'Histogram', id: 7 },
                  },
                },
                MetricFamily: {
                  fields: {
                    name: { type: 'string', id: 1 },
                    help: { type: 'string', id: 2 },
                    type: { type: 'MetricType', id: 3 },
                    metric: { rule: 'repeated', type: 'Metric', id: 4 },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
});

export const MetricFamily = root.lookupType('io.prometheus.client.MetricFamily');
export const Metric = root.lookupType('io.prometheus.client.Metric');
/** Field 4 of MetricFamily (repeated Metric), length-delimited: its tag byte. */
export const METRIC_FIELD_TAG = (4 << 3) | 2;

export const METRIC_TYPE = { counter: 0, gauge: 1, summary: 2, untyped: 3, histogram: 4 } as const;

export interface LabelPair {
  name: string;
  value: string;
}

export interface HistogramMessage {
  sampleCount: number;
  sampleSum: number;
  bucket: Array<{ cumulativeCount: number; upperBound: number }>;
  schema?: number;
  zeroThreshold?: number;
  zeroCount?: number;
  positiveSpan?: Array<{ offset: number; length: number }>;
  positiveDelta?: number[];
}

export interface MetricMessage {
  label: LabelPair[];
  gauge?: { value: number };
  counter?: { value: number };
  untyped?: { value: number };
  summary?: { sampleCount: number; sampleSum: number; quantile: Array<{ quantile: number; value: number }> };
  histogram?: HistogramMessage;
}

export interface MetricFamilyMessage {
  name: string;
  help: string;
  type: (typeof METRIC_TYPE)[keyof typeof METRIC_TYPE];
  metric: MetricMessage[];
}
