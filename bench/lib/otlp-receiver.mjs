// The worker benchmark's OTLP/HTTP receiver, in a process of its own: parsing exports must not hold up the SMTP sink
// (the harness's event loop) and so slow the traced workers' sends, which a collector elsewhere would not do.
// Counts spans per URL path (every benchmark process exports to its own); started with fork(): sends {port} once
// listening, and answers {id, count} to {id, path}.
import { createServer } from 'node:http';

const spans = new Map();
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const n = String(req.headers['content-type']).startsWith('application/json') ? countJsonSpans(body) : countProtobufSpans(body);
    spans.set(req.url, (spans.get(req.url) ?? 0) + n);
    res.writeHead(200, { 'content-type': req.headers['content-type'] }).end();
  });
});
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', ({ id, path }) => process.send({ id, count: spans.get(path) ?? 0 }));
process.on('disconnect', () => process.exit(0));

const SPAN_ID = Buffer.from('"spanId"');
/** Spans in an OTLP/JSON request: every span has one "spanId" key (parents are "parentSpanId"). */
function countJsonSpans(buf) {
  let n = 0;
  for (let p = buf.indexOf(SPAN_ID); p !== -1; p = buf.indexOf(SPAN_ID, p + SPAN_ID.length)) n += 1;
  return n;
}

/** Spans in an OTLP ExportTraceServiceRequest: resource_spans (1) > scope_spans (2) > spans (2), nothing decoded. */
function countProtobufSpans(buf) {
  let n = 0;
  eachField(
    buf,
    0,
    buf.length,
    (f1, s1, e1) => f1 === 1 && eachField(buf, s1, e1, (f2, s2, e2) => f2 === 2 && eachField(buf, s2, e2, (f3) => (n += f3 === 2 ? 1 : 0))),
  );
  return n;
}
/** Calls fn(field, start, end) for every length-delimited field of the message in buf[start, end). */
function eachField(buf, start, end, fn) {
  let p = start;
  const varint = () => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const b = buf[p++];
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  while (p < end) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const len = varint();
      fn(Math.floor(tag / 8), p, p + len);
      p += len;
    } else throw new Error(`OTLP receiver: unexpected protobuf wire type ${wire}`);
  }
}
