// Small PromQL builders shared by the rules (and mirrored by src/monitoring/promql.ts for the dashboards). The one
// idea they carry: every sidecar replica exports the same persisted numbers, so series are first deduplicated
// with max over the replica (keeping every label but job/instance) and only then summed over other labels.
{
  // `name{m1, m2}`; empty matchers are dropped.
  sel(name, matchers=[])::
    local m = std.filter(function(x) x != null && x != '', matchers);
    if std.length(m) > 0 then '%s{%s}' % [name, std.join(', ', m)] else name,

  // A config string as a PromQL string literal, quotes included: JSON's escapes are a subset of PromQL's (Go's),
  // so a quote or backslash in the value stays inside the literal.
  str(s):: std.escapeStringJson(s),

  // A regex alternation matching exactly these label values, quoted for a PromQL string.
  anyOf(values)::
    local special = '.*+?^${}()|[]';
    local esc(c) =
      if c == '\\' then '\\\\\\\\'
      else if std.member(special, c) then '\\\\' + c
      else if c == '"' then '\\"'
      else c;
    std.join('|', [std.join('', [esc(c) for c in std.stringChars(v)]) for v in values]),

  // The labels that name one queue: the deployment labels (config deploymentLabels, e.g. namespace) and
  // prefix, queue. Rules keep them on every per-queue series, so Alertmanager can tell deployments apart.
  key:: ['prefix', 'queue'],
  by:: std.join(', ', self.key),

  // Per-queue rate of a counter, deduplicated over replicas, summed over job names (and `extra` labels).
  queueRate(counter, window, matchers=[], keep=[], extra=[])::
    'sum by (%s) (max by (%s) (rate(%s[%s])))' % [
      std.join(', ', self.key + keep),
      // job_name too: grouping by a label a series lacks is harmless, and it keeps per-name series apart.
      std.join(', ', self.key + ['job_name'] + keep + extra),
      self.sel(counter, matchers),
      window,
    ],

  // The same per-queue rate of a native histogram's count or sum (fn: histogram_count, histogram_sum).
  nativeRate(fn, histogram, window, matchers=[])::
    'sum by (%s) (max by (%s) (%s(rate(%s[%s]))))' % [self.by, std.join(', ', self.key + ['job_name']), fn, self.sel(histogram, matchers), window],

  // A per-queue gauge deduplicated over replicas.
  queueGauge(gauge, matchers=[]):: 'max by (%s) (%s)' % [self.by, self.sel(gauge, matchers)],

  // Jobs ready to run now: waiting + prioritized (paused jobs stay in waiting in BullMQ v6).
  runnableJobs(matchers=[])::
    'sum by (%s) (max by (%s, state) (%s))' % [self.by, self.by, self.sel('bullmq_queue_jobs', ['state=~"waiting|prioritized"'] + matchers)],

  // The dead-letter queues as {prefix, queue="<q>-dlq"}: bullmq_dlq_jobs exists exactly for the queues the sidecar
  // counts as one (`<q>-dlq` whose source `<q>` exists), labelled by the source; the rules use that definition
  // instead of matching names.
  deadLetterQueues():: 'label_replace(max by (%s) (bullmq_dlq_jobs), "queue", "$1-dlq", "queue", "(.+)")' % self.by,

  // Matches a bucket bound whatever way the server spells it (Prometheus 3 writes le="30.0").
  leMatcher(seconds)::
    local text = self.num(seconds);
    if std.length(std.findSubstr('.', text)) > 0 || std.length(std.findSubstr('e', text)) > 0
    then 'le=~"%s"' % std.strReplace(text, '.', '\\\\.')
    else 'le=~"%s(\\\\.0)?"' % text,

  // A number as JavaScript prints it (jsonnet's own %s prints 17 digits: 0.10000000000000001).
  num(x):: if !std.isNumber(x) then x else if x == 0 then '0' else '%.15g' % x,

  durationSeconds(d)::
    local unit = { s: 1, m: 60, h: 3600, d: 86400 };
    local u = std.substr(d, std.length(d) - 1, 1);
    assert std.objectHas(unit, u) : 'bad duration %s: expected a number and one of s, m, h, d' % d;
    std.parseJson(std.substr(d, 0, std.length(d) - 1)) * unit[u],

  humanSeconds(sec)::
    if sec % 86400 == 0 then '%dd' % (sec / 86400)
    else if sec % 3600 == 0 then '%dh' % (sec / 3600)
    else if sec % 60 == 0 then '%dm' % (sec / 60)
    else '%ss' % self.num(sec),

  // Six significant digits, as the TypeScript side prints ratios.
  round6(x)::
    if x == 0 then 0
    else
      local e = std.floor(std.log(std.abs(x)) / std.log(10));
      local f = std.pow(10, 5 - e);
      std.floor(x * f + 0.5) / f,

  percent(ratio):: '%s%%' % self.num(self.round6(ratio * 100)),

  // Thresholds of one queue: the defaults with its override merged field by field.
  thresholdsFor(c, queue)::
    local o = if std.objectHas(c.overrides, queue) then c.overrides[queue] else {};
    { [k]: c.defaults[k] + (if std.objectHas(o, k) then o[k] else {}) for k in std.objectFields(c.defaults) },
}
