/** Verification function schemas. */
import { Type } from 'typebox';

const limits = {
  timeoutMs: Type.Optional(Type.Integer({ description: '10-30000, default 5000' })),
  memoryMb: Type.Optional(Type.Integer({ description: '8-512, default 64' })),
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
