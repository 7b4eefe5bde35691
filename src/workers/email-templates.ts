// Owns the email templates: subject, text and HTML for each template name, with variables escaped for HTML.
import type { EmailJob } from '../jobs/schemas.js';

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

type Vars = EmailJob['vars'];

const TEMPLATES: Record<EmailJob['template'], { subject: string; body: string }> = {
  welcome: { subject: 'Welcome to {{product}}', body: 'Hello {{name}},\n\nyour account is ready. Sign in at {{url}}.' },
  'password-reset': {
    subject: 'Reset your password',
    body: 'Hello {{name}},\n\nsomeone asked to reset your password. Use this link within {{minutes}} minutes: {{url}}\nIf it was not you, ignore this email.',
  },
  'export-ready': { subject: 'Your export {{file}} is ready', body: 'Your export {{file}} is ready: {{rows}} rows, SHA-256 {{sha256}}.' },
};

const DEFAULTS: Vars = { product: 'queuelens', name: 'there', url: 'https://example.invalid/', minutes: 30 };

function fill(text: string, vars: Vars, escape: (s: string) => string): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_m, key: string) => escape(String(vars[key] ?? DEFAULTS[key] ?? '')));
}

const html = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderEmail(template: EmailJob['template'], vars: Vars): RenderedEmail {
  const t = TEMPLATES[template];
  const text = fill(t.body, vars, (s) => s);
  return {
    subject: fill(t.subject, vars, (s) => s.replace(/[\r\n]+/g, ' ')),
    text,
    html: `<!doctype html><html><body><p>${fill(t.body, vars, html).replace(/\n\n/g, '</p><p>').replace(/\n/g, '<br>')}</p></body></html>`,
  };
}
