/**
 * Values of the custom HTTPS verification parameters: literal text with `${…}` variables, as on the
 * reference product page. The set of variables is closed, so a typo is refused when the gateway is
 * saved instead of sending an empty value on every CONNECT.
 */

const FIXED_VARIABLES = ['username', 'password', 'clientId', 'cert.cn', 'cert.serial', 'cert.issuer'] as const;
const USER_PROPERTY_PREFIX = 'userProperties.';

export type TemplatePart = { text: string } | { variable: string };

export type TemplateParseResult =
  | { ok: true; parts: TemplatePart[] }
  | { ok: false; message: string };

export function isKnownVariable(name: string): boolean {
  return (FIXED_VARIABLES as readonly string[]).includes(name)
    || (name.startsWith(USER_PROPERTY_PREFIX) && name.length > USER_PROPERTY_PREFIX.length);
}

export function parseTemplate(template: string): TemplateParseResult {
  const parts: TemplatePart[] = [];
  let rest = template;
  while (rest.length > 0) {
    const start = rest.indexOf('${');
    if (start === -1) {
      parts.push({ text: rest });
      break;
    }
    if (start > 0) parts.push({ text: rest.slice(0, start) });
    const end = rest.indexOf('}', start + 2);
    if (end === -1) return { ok: false, message: `unterminated "\${" in "${template}"` };
    const variable = rest.slice(start + 2, end);
    if (!isKnownVariable(variable)) {
      return {
        ok: false,
        message: `unknown variable \${${variable}}; use \${username}, \${password}, \${clientId}, \${cert.cn}, `
          + '${cert.serial}, ${cert.issuer} or ${userProperties.<key>}',
      };
    }
    parts.push({ variable });
    rest = rest.slice(end + 1);
  }
  return { ok: true, parts };
}

/** What a CONNECT offers to the templates. */
export interface TemplateContext {
  username: string;
  password: string;
  clientId: string;
  cert: { cn: string | null; serial: string; issuer: string } | null;
  /** MQTT v5 CONNECT user properties (the first value of a repeated key). */
  userProperties: Readonly<Record<string, string>>;
}

/**
 * Renders a template that `parseTemplate` accepted. A variable without a value (no client
 * certificate, a user property the client did not send) renders as the empty string.
 */
export function renderTemplate(template: string, context: TemplateContext): string {
  const parsed = parseTemplate(template);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.parts.map((part) => ('text' in part ? part.text : valueOf(part.variable, context))).join('');
}

function valueOf(variable: string, context: TemplateContext): string {
  switch (variable) {
    case 'username': return context.username;
    case 'password': return context.password;
    case 'clientId': return context.clientId;
    case 'cert.cn': return context.cert?.cn ?? '';
    case 'cert.serial': return context.cert?.serial ?? '';
    case 'cert.issuer': return context.cert?.issuer ?? '';
    default:
      return Object.hasOwn(context.userProperties, variable.slice(USER_PROPERTY_PREFIX.length))
        ? context.userProperties[variable.slice(USER_PROPERTY_PREFIX.length)] ?? ''
        : '';
  }
}
