// Telemetry filter configuration (schema.json documents the same fields).

import { asciiLower, ConfigErrors, configRoot } from '../sdk/index';

export class TelemetryConfig {
  service: string = '';
  metricPrefix: string = 'weft_';
  accessLog: bool = true;
  requestIdHeader: string = 'x-request-id';
  traceContext: bool = true;
}

export function parseTelemetryConfig(text: string, errors: ConfigErrors): TelemetryConfig {
  const c = new TelemetryConfig();
  const node = configRoot(text, errors);
  if (node === null) return c;
  node.allowOnly(['service', 'metricPrefix', 'accessLog', 'requestIdHeader', 'traceContext']);
  c.service = node.str('service', '');
  c.metricPrefix = node.str('metricPrefix', c.metricPrefix);
  c.accessLog = node.bool('accessLog', c.accessLog);
  c.requestIdHeader = asciiLower(node.nonEmpty('requestIdHeader', c.requestIdHeader));
  c.traceContext = node.bool('traceContext', c.traceContext);
  for (let i = 0; i < c.metricPrefix.length; i++) {
    const ch = c.metricPrefix.charCodeAt(i);
    if (!((ch >= 97 && ch <= 122) || (ch >= 48 && ch <= 57) || ch == 95)) {
      node.fail('metricPrefix', 'only [a-z0-9_] allowed');
      break;
    }
  }
  return c;
}
