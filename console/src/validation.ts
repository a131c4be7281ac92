/**
 * The API's rules, mirrored so the form can answer as the operator types, with the API's own wording
 * (src/core/errors.ts, src/registry/gateway-rules.ts, device-rules.ts, templates.ts). The API stays the
 * final judge: whatever it answers is shown next to the field it names.
 */

export const GATEWAY_NAME = /^[A-Za-z0-9_]{4,30}$/;
export const DEFAULT_PORT = 1883;
export const MIN_PORT = 1024;
export const MAX_PORT = 65535;
export const MAX_PARAMS = 10;
export const MAX_PARAM_LENGTH = 64;
const RESERVED_PARAM_KEYS = ['username', 'password', 'certificateCommonName'];

export const USERNAME = /^[A-Za-z0-9\-_@.:]{4,32}$/;
export const PASSWORD = /^[A-Za-z0-9\-_@.:]{1,32}$/;
export const DEVICE_NAME = /^[A-Za-z0-9\-_@.:]{4,32}$/;
export const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export const MESSAGES = {
  GW_ERR_GATEWAY_NAME_INVALID: 'Gateway name must be 4-30 characters of letters, digits and underscores',
  GW_ERR_PORT_OUT_OF_RANGE: 'Port must be an integer from 1024 to 65535',
  GW_ERR_URL_INVALID: 'Not a valid URL',
  GW_ERR_URL_NOT_HTTPS: 'The verification URL must start with https://',
  GW_ERR_TOO_MANY_PARAMS: 'At most 10 custom verification parameters',
  GW_ERR_OCSP_NEEDS_X509: 'Client OCSP verification needs X.509 device verification',
  GW_ERR_DEVICE_NAME_INVALID: 'Device name must be 4-32 characters of letters, digits and - _ @ . :',
  GW_ERR_USERNAME_INVALID: 'Username must be 4-32 characters of letters, digits and - _ @ . :',
  GW_ERR_PASSWORD_INVALID: 'Password must be 1-32 characters of letters, digits and - _ @ . :',
  GW_ERR_FUNCTION_NAME_INVALID: 'Function name must be 1-64 characters of letters, digits, - and _',
} as const;

/** The `${…}` variables a custom parameter value may use (reference page: Custom Device Verification Parameters). */
export const TEMPLATE_VARIABLES = [
  { variable: '${username}', help: 'the MQTT username' },
  { variable: '${password}', help: 'the MQTT password' },
  { variable: '${clientId}', help: 'the MQTT client ID' },
  { variable: '${cert.cn}', help: 'device certificate CN' },
  { variable: '${cert.serial}', help: 'device certificate serial' },
  { variable: '${cert.issuer}', help: 'device certificate issuer' },
  { variable: '${userProperties.}', help: 'a CONNECT user property (add its key)' },
] as const;

const FIXED_VARIABLES = ['username', 'password', 'clientId', 'cert.cn', 'cert.serial', 'cert.issuer'];

export type Errors = Record<string, string>;

export function checkGatewayName(name: string): string | null {
  return GATEWAY_NAME.test(name) ? null : MESSAGES.GW_ERR_GATEWAY_NAME_INVALID;
}

export function checkPort(port: string): string | null {
  if (!/^\d+$/.test(port.trim())) return MESSAGES.GW_ERR_PORT_OUT_OF_RANGE;
  const n = Number(port);
  return n >= MIN_PORT && n <= MAX_PORT ? null : MESSAGES.GW_ERR_PORT_OUT_OF_RANGE;
}

export function checkHttpsUrl(url: string): string | null {
  if (url.length > 2048) return MESSAGES.GW_ERR_URL_INVALID;
  if (!/^https:\/\//i.test(url)) return MESSAGES.GW_ERR_URL_NOT_HTTPS;
  try {
    new URL(url);
  } catch {
    return `thirdParty.url is not a valid URL: ${url}`;
  }
  return null;
}

export function checkTemplate(template: string, at: string): string | null {
  let rest = template;
  while (rest.length > 0) {
    const start = rest.indexOf('${');
    if (start === -1) break;
    const end = rest.indexOf('}', start + 2);
    if (end === -1) return `${at}: unterminated "\${" in "${template}"`;
    const variable = rest.slice(start + 2, end);
    const known = FIXED_VARIABLES.includes(variable) || (variable.startsWith('userProperties.') && variable.length > 'userProperties.'.length);
    if (!known) {
      return `${at}: unknown variable \${${variable}}; use \${username}, \${password}, \${clientId}, \${cert.cn}, `
        + '${cert.serial}, ${cert.issuer} or ${userProperties.<key>}';
    }
    rest = rest.slice(end + 1);
  }
  return null;
}

/** Field errors keyed as the API names them (`thirdParty.params[2].key`). */
export function checkParams(params: { key: string; value: string }[]): Errors {
  const errors: Errors = {};
  if (params.length > MAX_PARAMS) errors['thirdParty.params'] = `thirdParty.params has ${params.length} entries; at most ${MAX_PARAMS}`;
  const seen = new Set<string>();
  params.forEach((param, i) => {
    const at = `thirdParty.params[${i}]`;
    if (param.key === '') errors[`${at}.key`] = `${at}.key must be a non-empty string`;
    else if (param.key.length > MAX_PARAM_LENGTH) errors[`${at}.key`] = `${at}.key is longer than ${MAX_PARAM_LENGTH} characters`;
    else if (RESERVED_PARAM_KEYS.includes(param.key)) errors[`${at}.key`] = `${at}.key "${param.key}" is a field of the verification call itself`;
    else if (seen.has(param.key)) errors[`${at}.key`] = `${at}.key "${param.key}" is repeated`;
    seen.add(param.key);
    if (param.value.length > MAX_PARAM_LENGTH) errors[`${at}.value`] = `${at}.value is longer than ${MAX_PARAM_LENGTH} characters`;
    else {
      const t = checkTemplate(param.value, `${at}.value`);
      if (t !== null) errors[`${at}.value`] = t;
    }
  });
  return errors;
}

export function ocspNeedsX509(mode: string): boolean {
  return mode === 'CLIENT' || mode === 'SERVER_AND_CLIENT';
}

export function checkOcsp(mode: string, x509: boolean): string | null {
  return ocspNeedsX509(mode) && !x509 ? `ocsp.mode ${mode} checks client certificates and needs x509.enabled` : null;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/** A light shape check; the API parses the certificates and says exactly what is wrong. */
export function checkPemCertificates(pem: string, field: string): string | null {
  if (pem.trim() === '') return null;
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.length === 0 || blocks.some((b) => b[1] !== 'CERTIFICATE')) return `${field}: Not a valid PEM certificate`;
  return null;
}

export function checkPemKey(pem: string): string | null {
  if (pem.trim() === '') return null;
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.length !== 1 || !/PRIVATE KEY$/.test(blocks[0]?.[1] ?? '')) return 'Not a valid unencrypted PEM private key';
  if (blocks[0]?.[1] === 'ENCRYPTED PRIVATE KEY') return 'Not a valid unencrypted PEM private key';
  return null;
}

export function countPemCertificates(pem: string): number {
  return [...pem.matchAll(PEM_BLOCK)].filter((b) => b[1] === 'CERTIFICATE').length;
}

export function checkUsername(v: string): string | null {
  return USERNAME.test(v) ? null : MESSAGES.GW_ERR_USERNAME_INVALID;
}
export function checkPassword(v: string): string | null {
  return PASSWORD.test(v) ? null : MESSAGES.GW_ERR_PASSWORD_INVALID;
}
export function checkDeviceName(v: string): string | null {
  return v === '' || DEVICE_NAME.test(v) ? null : MESSAGES.GW_ERR_DEVICE_NAME_INVALID;
}
export function checkFunctionName(v: string): string | null {
  return FUNCTION_NAME.test(v) ? null : MESSAGES.GW_ERR_FUNCTION_NAME_INVALID;
}
