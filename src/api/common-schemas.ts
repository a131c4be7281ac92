/** Schemas every resource shares: the error body, warnings, nullable helper. */
import { Type, type TSchema } from 'typebox';

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'GW_ERR_… code; stable, assert on it' }),
    message: Type.String(),
    field: Nullable(Type.String({ description: 'The input field at fault, as a path: thirdParty.params[2].key' })),
  }),
}, { description: 'Every 4xx/5xx answer' });

export const WarningSchema = Type.Object({
  code: Type.String({ description: 'GW_WARN_… e.g. GW_WARN_CERT_EXPIRES_SOON' }),
  message: Type.String(),
  field: Type.String(),
});

/** Error answers for the OpenAPI document (and so that replies match them). */
export const errorResponses = {
  '4xx': ErrorBody,
  '5xx': ErrorBody,
} as const;
