// The example Alertmanager config (deploy/alertmanager/alertmanager.yml) in a real Alertmanager: a Redis outage
// silences the queue alerts of its own deployment only (issue 14: the inhibition had no `equal:`, so one Redis
// down silenced every deployment's alerts). Alerts are posted through Alertmanager's API; the inhibition is
// read back from the same API.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startAlertmanager, startWebhookReceiver, type RunningAlertmanager, type WebhookReceiver } from './helpers/prometheus.js';

interface ApiAlert {
  labels: Record<string, string>;
  status: { state: string; inhibitedBy: string[] };
}

let am: RunningAlertmanager;
let receiver: WebhookReceiver;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  am = await startAlertmanager({ receiverUrl: receiver.url });
}, 60_000);
afterAll(async () => {
  await am?.stop();
  await receiver?.close();
});

async function post(alerts: Array<Record<string, string>>): Promise<void> {
  const endsAt = new Date(Date.now() + 3_600_000).toISOString();
  const res = await fetch(`${am.url}/api/v2/alerts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(alerts.map((labels) => ({ labels, annotations: {}, endsAt }))),
  });
  expect(res.status).toBe(200);
}

/**
 * Alerts of that name, once Alertmanager lists all `count` of them and `ready` holds. The inhibitor learns of a
 * source alert asynchronously: waiting until the alert that must be muted is muted proves it knows the source,
 * and from then on every other alert's state is final.
 */
async function listed(alertname: string, count: number, ready: (alerts: ApiAlert[]) => boolean = () => true): Promise<ApiAlert[]> {
  let alerts: ApiAlert[] = [];
  for (let i = 0; i < 300; i++) {
    const res = await fetch(`${am.url}/api/v2/alerts?filter=${encodeURIComponent(`alertname="${alertname}"`)}`);
    alerts = (await res.json()) as ApiAlert[];
    if (alerts.length === count && ready(alerts)) return alerts;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Alertmanager never listed the expected ${alertname} alerts: ${JSON.stringify(alerts)}`);
}
const suppressedIn = (namespace: string) => (alerts: ApiAlert[]) => alerts.some((a) => a.labels.namespace === namespace && a.status.state === 'suppressed');

describe('inhibition by deployment', () => {
  test("Redis down in one namespace mutes that namespace's queue alerts, not another's", async () => {
    await post([
      { alertname: 'BullMQRedisDown', severity: 'critical', job: 'queuelens', namespace: 'shop' },
      { alertname: 'BullMQNoWorkers', severity: 'critical', namespace: 'shop', prefix: 'bull', queue: 'email' },
      { alertname: 'BullMQNoWorkers', severity: 'critical', namespace: 'billing', prefix: 'bull', queue: 'email' },
      { alertname: 'BullMQOldestJobTooOld', severity: 'critical', namespace: 'billing', prefix: 'bull', queue: 'invoices' },
    ]);
    const noWorkers = await listed('BullMQNoWorkers', 2, suppressedIn('shop'));
    const byNamespace = Object.fromEntries(noWorkers.map((a) => [a.labels.namespace, a.status]));
    expect(byNamespace.shop!.state).toBe('suppressed');
    expect(byNamespace.shop!.inhibitedBy).toHaveLength(1);
    expect(byNamespace.billing!.state).toBe('active');
    expect(byNamespace.billing!.inhibitedBy).toEqual([]);
    const [oldest] = await listed('BullMQOldestJobTooOld', 1);
    expect(oldest!.status.state).toBe('active');
  });

  test('no workers mutes backlog growth of the same queue in the same namespace only', async () => {
    await post([
      { alertname: 'BullMQNoWorkers', severity: 'critical', namespace: 'ops', prefix: 'bull', queue: 'webhook' },
      { alertname: 'BullMQBacklogGrowing', severity: 'warning', namespace: 'ops', prefix: 'bull', queue: 'webhook' },
      { alertname: 'BullMQBacklogGrowing', severity: 'warning', namespace: 'ops2', prefix: 'bull', queue: 'webhook' },
    ]);
    const backlog = await listed('BullMQBacklogGrowing', 2, suppressedIn('ops'));
    const state = Object.fromEntries(backlog.map((a) => [a.labels.namespace, a.status.state]));
    expect(state).toEqual({ ops: 'suppressed', ops2: 'active' });
  });
});
