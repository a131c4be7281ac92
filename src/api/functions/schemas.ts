/** Verification function schemas. */
import { Type } from 'typebox';

const limits = {
  timeoutMs: Type.Optional(Type.Integer({ description: '10-30000, default 5000' })),
  memoryMb: Type.Optional(Type.Integer({ description: '8-256, default 64' })),
};

const source = Type.String({
  description: 'JavaScript defining handler(event) (may be async): event {userName, password, clientId, certificateCommonName}, '
    + 'returns {result: "true"|"false", deviceName?, message?}',
});

export const FunctionCreateBody = Type.Object({
  name: Type.String({ description: '1-64 of A-Z a-z 0-9 - _' }),
  source,
  ...limits,
}, { additionalProperties: false });

export const FunctionPutBody = Type.Object({ source, ...limits }, { additionalProperties: false });

export const FunctionView = Type.Object({
  name: Type.String(),
  source: Type.String(),
  timeoutMs: Type.Integer(),
  memoryMb: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const FunctionList = Type.Object({ items: Type.Array(FunctionView) });
export const FunctionParams = Type.Object({ name: Type.String() });

const NullableString = (description: string) => Type.Optional(Type.Union([Type.String(), Type.Null()], { description }));

export const FunctionInvokeBody = Type.Object({
  userName: NullableString('The MQTT username (null when the client sent none)'),
  password: NullableString('The MQTT password as UTF-8 text'),
  clientId: Type.Optional(Type.String({ description: 'The MQTT client identifier; default ""' })),
  certificateCommonName: NullableString('CN of the client certificate, when X.509 is on'),
}, { additionalProperties: false, description: 'The verification input a CONNECT would produce' });

const InvokeErrorView = Type.Object({
  kind: Type.Enum(['timeout', 'memory', 'threw', 'bad-result', 'busy', 'disposed', 'internal']),
  message: Type.String(),
  line: Type.Optional(Type.Integer()),
});

export const FunctionInvokeResult = Type.Object({
  output: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], { description: 'What handler returned; null when it failed' }),
  error: Type.Union([InvokeErrorView, Type.Null()], { description: 'Why the function produced no value; null when it answered' }),
  decision: Type.Object({
    result: Type.Enum(['ACCEPT', 'REJECT', 'SERVER_UNAVAILABLE']),
    deviceName: Type.Union([Type.String(), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()]),
    message: Type.Union([Type.String(), Type.Null()]),
  }, { description: 'What a CONNECT with this input would get' }),
  logs: Type.Array(Type.Object({ level: Type.Enum(['log', 'warn', 'error']), message: Type.String() })),
  durationMs: Type.Number(),
});
