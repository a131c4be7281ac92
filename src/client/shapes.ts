/**
 * Names for the API's shapes, each taken from the generated route types (never written out again), so a
 * schema change on the server changes them here and the compiler points at every use.
 */
import type { components, paths } from './api-types.ts';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** The JSON body a route answers with a status (200 unless said). */
export type Answer<P extends keyof paths, M extends Method, S extends number = 200> =
  paths[P][M] extends { responses: infer R } ? R extends { [K in S]: { content: { 'application/json': infer B } } } ? B : never : never;

/** The JSON body a route takes. */
export type RequestBody<P extends keyof paths, M extends Method> =
  paths[P][M] extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;

/** The query a route takes. */
export type Query<P extends keyof paths, M extends Method> =
  paths[P][M] extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

export type GatewayListItem = Answer<'/api/v1/gateways', 'get'>['items'][number];
export type Gateway = Answer<'/api/v1/gateways/{id}', 'get'>;
export type GatewayCreate = RequestBody<'/api/v1/gateways', 'post'>;
export type GatewayUpdate = RequestBody<'/api/v1/gateways/{id}', 'patch'>;
export type GatewayStatus = Gateway['status'];
export type AuthType = Gateway['authType'];
export type OcspMode = Gateway['ocsp']['mode'];
export type ThirdPartyView = NonNullable<Gateway['thirdParty']>;
export type Warning = Gateway['warnings'][number];
export type AccessControl = components['schemas']['AccessControl'];
export type AclRule = AccessControl['rules'][number];
export type AclAction = AclRule['action'];
export type HttpsParam = NonNullable<ThirdPartyView['params']>[number];
export type GatewayLimits = components['schemas']['GatewayLimits'];
export type GatewayLimitsUsage = NonNullable<Gateway['limitsUsage']>;
export type ParsingTestResult = Answer<'/api/v1/gateways/{id}/parsing/test', 'post'>;
export type SelfSignedCertificate = Answer<'/api/v1/certificates/self-signed', 'post', 201>;

export type Product = Answer<'/api/v1/products/{productKey}', 'get'>;
export type DevicePage = Answer<'/api/v1/products/{productKey}/devices', 'get'>;
export type DeviceListQuery = Query<'/api/v1/products/{productKey}/devices', 'get'>;
export type Device = Answer<'/api/v1/products/{productKey}/devices/{deviceName}', 'get'>;
export type DeviceStatus = Device['status'];
export type DeviceSession = Answer<'/api/v1/products/{productKey}/devices/{deviceName}/sessions', 'get'>['items'][number];
export type ImportOperation = Answer<'/api/v1/products/{productKey}/imports/{importId}', 'get'>;

export type VerificationFunction = Answer<'/api/v1/functions/{name}', 'get'>;
export type FunctionPut = RequestBody<'/api/v1/functions/{name}', 'put'>;
export type InvokeResult = Answer<'/api/v1/functions/{name}/invoke', 'post'>;

export type Message = Answer<'/api/v1/messages', 'get'>['items'][number];
export type MessageQuery = Query<'/api/v1/messages', 'get'>;
export type DownlinkResult = Answer<'/api/v1/products/{productKey}/devices/{deviceName}/messages', 'post'>;

export type StreamQuery = Query<'/api/v1/stream', 'get'>;

export type ConnectionEvent = components['schemas']['ConnectionEvent'];
export type EventQuery = Query<'/api/v1/events', 'get'>;

export type Webhook = Answer<'/api/v1/webhooks/{id}', 'get'>;
export type WebhookCreate = RequestBody<'/api/v1/webhooks', 'post'>;
export type WebhookUpdate = RequestBody<'/api/v1/webhooks/{id}', 'patch'>;
export type DeadLetter = Answer<'/api/v1/webhooks/{id}/dead-letters', 'get'>['items'][number];
