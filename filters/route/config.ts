// Route filter configuration (schema.json documents the same fields).

import { asciiLower, ConfigErrors, ConfigNode, configRoot, decimal } from '../sdk/index';

export class Split {
  constructor(public subset: string, public percent: i32) {}
}

export class RouteConfig {
  subsetHeader: string = 'x-weft-subset';
  // canary
  canaryHeader: string = '';
  canaryCookie: string = '';
  salt: string = '';
  splits: Split[] = [];
  defaultSubset: string = '';
  // tester overrides
  overrideHeader: string = '';
  overrideIdentities: string[] = [];
  // tenant routing: [tenant, subset, tenant, subset, ...]
  tenantHeader: string = '';
  tenantSubsets: string[] = [];
}

/** Subset names travel in a header and are matched by routes: keep them tokens. */
export function isSubsetName(s: string): bool {
  if (s.length == 0 || s.length > 63) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 45 || c == 46 || c == 95;
    if (!ok) return false;
  }
  return true;
}

function subsetField(node: ConfigNode, name: string, required: bool): string {
  const s = node.str(name, '', required);
  if (node.has(name) && !isSubsetName(s)) node.fail(name, 'must be 1-63 characters of [A-Za-z0-9._-]');
  return s;
}

export function parseRouteConfig(text: string, errors: ConfigErrors): RouteConfig {
  const c = new RouteConfig();
  const root = configRoot(text, errors);
  if (root === null) return c;
  root.allowOnly(['subsetHeader', 'canary', 'override', 'tenant']);
  c.subsetHeader = asciiLower(root.nonEmpty('subsetHeader', c.subsetHeader));

  const canary = root.object('canary');
  if (canary !== null) {
    canary.allowOnly(['hashOn', 'salt', 'splits', 'defaultSubset']);
    const hashOn = canary.object('hashOn', true);
    if (hashOn !== null) {
      hashOn.allowOnly(['header', 'cookie']);
      c.canaryHeader = asciiLower(hashOn.nonEmpty('header', ''));
      c.canaryCookie = hashOn.nonEmpty('cookie', '');
      if ((c.canaryHeader.length > 0) == (c.canaryCookie.length > 0)) hashOn.fail('', 'set exactly one of header, cookie');
    }
    c.salt = canary.str('salt', '');
    c.defaultSubset = subsetField(canary, 'defaultSubset', false);
    const splits = canary.objects('splits', true);
    let total = 0;
    for (let i = 0; i < splits.length; i++) {
      splits[i].allowOnly(['subset', 'percent']);
      const subset = subsetField(splits[i], 'subset', true);
      const percent = <i32>splits[i].int('percent', 0, 0, 100, true);
      total += percent;
      c.splits.push(new Split(subset, percent));
    }
    if (total > 100) canary.fail('splits', 'percentages add up to ' + decimal(total) + ', more than 100');
  }

  const overrideNode = root.object('override');
  if (overrideNode !== null) {
    overrideNode.allowOnly(['header', 'allowedIdentities']);
    c.overrideHeader = asciiLower(overrideNode.nonEmpty('header', 'x-weft-subset-override'));
    c.overrideIdentities = overrideNode.strings('allowedIdentities', true);
    for (let i = 0; i < c.overrideIdentities.length; i++) {
      if (!c.overrideIdentities[i].startsWith('spiffe://')) overrideNode.fail('allowedIdentities[' + decimal(i) + ']', 'must be a spiffe:// ID');
    }
  }

  const tenant = root.object('tenant');
  if (tenant !== null) {
    tenant.allowOnly(['header', 'subsets']);
    c.tenantHeader = asciiLower(tenant.nonEmpty('header', 'x-weft-tenant'));
    c.tenantSubsets = tenant.stringMap('subsets');
    for (let i = 1; i < c.tenantSubsets.length; i += 2) {
      if (!isSubsetName(c.tenantSubsets[i])) tenant.fail('subsets.' + c.tenantSubsets[i - 1], 'must be 1-63 characters of [A-Za-z0-9._-]');
    }
  }
  return c;
}
