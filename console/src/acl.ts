/**
 * Topic access control in the console: the API's rule checks (src/registry/access-control.ts, same
 * wording) and a device's effective rules, with the placeholders filled as a CONNECT would fill them.
 */
import type { AccessControl, AclRule, Device } from './api.ts';

export const ACL_PLACEHOLDERS = ['deviceName', 'username', 'clientId', 'productKey', 'cert.cn'] as const;
export const MAX_ACL_RULES = 100;
export const MAX_ACL_TOPIC_LENGTH = 256;

/** The one-click template: each device publishes and subscribes only under devices/<its name>/. */
export const PER_DEVICE_TEMPLATE: AccessControl = {
  defaultAction: 'DENY',
  rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }],
};

/** The API's message for a rule topic, or null when it is fine. */
export function checkAclTopic(topic: string, field: string): string | null {
  if (topic.length === 0 || topic.length > MAX_ACL_TOPIC_LENGTH) return `${field} must be a topic filter of 1-${MAX_ACL_TOPIC_LENGTH} characters`;
  if (topic.startsWith('$share/')) return `${field}: write the filter without $share/<group>/ (shared subscriptions are checked on their filter)`;
  const levels = topic.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('${')) {
      const name = /^\$\{([^}]*)\}$/.exec(level)?.[1];
      if (name === undefined) return `${field}: a placeholder must fill a whole level ("${level}")`;
      if (!(ACL_PLACEHOLDERS as readonly string[]).includes(name)) {
        return `${field}: unknown placeholder \${${name}}; use ${ACL_PLACEHOLDERS.map((p) => `\${${p}}`).join(', ')}`;
      }
      continue;
    }
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `${field}: "#" must be the last level, alone`;
    if (level.includes('+') && level !== '+') return `${field}: "+" must fill a whole level`;
  }
  return null;
}

export interface EffectiveRule extends AclRule {
  /** The topic with this device's values; null when a value is missing or holds + # / (the rule never matches). */
  filled: string | null;
  /** Filled at CONNECT (the client id of each connection). */
  perConnection: boolean;
}

/** The gateway's rules as they apply to one device (rules a third-party answer carries come on top, per connection). */
export function effectiveRules(access: AccessControl, device: Pick<Device, 'deviceName' | 'username' | 'productKey' | 'certificate'>): EffectiveRule[] {
  const values: Record<string, string | null | undefined> = {
    deviceName: device.deviceName, username: device.username, productKey: device.productKey, 'cert.cn': device.certificate?.cn,
  };
  return access.rules.map((rule) => {
    let perConnection = false;
    let usable = true;
    const filled = rule.topic.split('/').map((level) => {
      const name = /^\$\{([^}]*)\}$/.exec(level)?.[1];
      if (name === undefined) return level;
      if (name === 'clientId') {
        perConnection = true;
        return level;
      }
      const value = values[name];
      if (value === undefined || value === null || value === '' || /[+#/]/.test(value)) usable = false;
      return value ?? '';
    }).join('/');
    return { ...rule, filled: usable ? filled : null, perConnection };
  });
}
